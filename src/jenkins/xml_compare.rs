//! Semantic comparison of config.xml documents: Jenkins rewrites the prologue (XML 1.1), the
//! indentation and the attribute order, so text comparison would see drift where there is none.

use quick_xml::Reader;
use quick_xml::events::{BytesStart, Event};

#[derive(Debug, PartialEq)]
struct Element {
    name: String,
    /// Sorted by name: attribute order carries no meaning.
    attributes: Vec<(String, String)>,
    children: Vec<Child>,
}

#[derive(Debug, PartialEq)]
enum Child {
    Element(Element),
    Text(String),
}

/// True when two config.xml documents say the same thing.
///
/// Ignored: the XML declaration (version, encoding), comments and processing instructions,
/// whitespace-only text (indentation), attribute order, the spelling of escapes and CDATA,
/// `<a/>` versus `<a></a>`. Significant: element names and order, attribute values, other text.
/// A malformed document is never equivalent to anything.
pub fn configs_equivalent(a: &str, b: &str) -> bool {
    match (parse(a), parse(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// The text of the root element's first child named `name` (`description` of a job), or
/// `None` when the document is malformed or has no such child.
pub fn root_child_text(xml: &str, name: &str) -> Option<String> {
    let root = parse(xml).ok()?;
    root.children.into_iter().find_map(|child| match child {
        Child::Element(e) if e.name == name => Some(
            e.children
                .into_iter()
                .filter_map(|c| match c {
                    Child::Text(t) => Some(t),
                    Child::Element(_) => None,
                })
                .collect(),
        ),
        _ => None,
    })
}

fn parse(text: &str) -> Result<Element, String> {
    let text = text.trim_start_matches('\u{feff}');
    let mut reader = Reader::from_str(text);
    let mut stack: Vec<Element> = Vec::new();
    let mut root = None;
    loop {
        let event = reader.read_event().map_err(|e| e.to_string())?;
        match event {
            Event::Start(start) => stack.push(open(&start)?),
            Event::Empty(start) => {
                let element = open(&start)?;
                attach(&mut stack, &mut root, element)?;
            }
            Event::End(end) => {
                let mut element = stack.pop().ok_or("unexpected end tag")?;
                if end.name().as_ref() != element.name {
                    return Err(format!("mismatched end tag for {}", element.name));
                }
                element
                    .children
                    .retain(|c| !matches!(c, Child::Text(t) if t.trim().is_empty()));
                attach(&mut stack, &mut root, element)?;
            }
            Event::Text(text) => push_text(&mut stack, &text.xml10_content())?,
            Event::CData(data) => push_text(&mut stack, &data.xml10_content())?,
            Event::GeneralRef(reference) => {
                let resolved = match reference.resolve_char_ref().map_err(|e| e.to_string())? {
                    Some(c) => c.to_string(),
                    None => match &*reference {
                        "lt" => "<".into(),
                        "gt" => ">".into(),
                        "amp" => "&".into(),
                        "apos" => "'".into(),
                        "quot" => "\"".into(),
                        other => return Err(format!("undefined entity &{other};")),
                    },
                };
                push_text(&mut stack, &resolved)?;
            }
            Event::Eof => break,
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) | Event::DocType(_) => {}
        }
    }
    if !stack.is_empty() {
        return Err("unclosed element".into());
    }
    root.ok_or_else(|| "no root element".into())
}

fn open(start: &BytesStart<'_>) -> Result<Element, String> {
    let mut attributes = Vec::new();
    for attribute in start.attributes() {
        let attribute = attribute.map_err(|e| e.to_string())?;
        let value = attribute
            .normalized_value(quick_xml::XmlVersion::Implicit1_0)
            .map_err(|e| e.to_string())?;
        attributes.push((attribute.key.as_ref().to_string(), value.into_owned()));
    }
    attributes.sort();
    Ok(Element {
        name: start.name().as_ref().to_string(),
        attributes,
        children: Vec::new(),
    })
}

fn attach(
    stack: &mut [Element],
    root: &mut Option<Element>,
    element: Element,
) -> Result<(), String> {
    match stack.last_mut() {
        Some(parent) => parent.children.push(Child::Element(element)),
        None if root.is_some() => return Err("more than one root element".into()),
        None => *root = Some(element),
    }
    Ok(())
}

fn push_text(stack: &mut [Element], text: &str) -> Result<(), String> {
    match stack.last_mut() {
        Some(parent) => {
            if let Some(Child::Text(previous)) = parent.children.last_mut() {
                previous.push_str(text);
            } else {
                parent.children.push(Child::Text(text.to_string()));
            }
            Ok(())
        }
        None if text.trim().is_empty() => Ok(()),
        None => Err("text outside the root element".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::configs_equivalent;

    const PIPELINE: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<flow-definition plugin="workflow-job">
  <description>deploys &amp; tests</description>
  <definition class="org.jenkinsci.plugins.workflow.cps.CpsFlowDefinition" plugin="workflow-cps">
    <script>echo 'hi'</script>
    <sandbox>true</sandbox>
  </definition>
  <disabled>false</disabled>
</flow-definition>"#;

    #[test]
    fn prologue_indentation_and_attribute_order_do_not_matter() {
        let rewritten = "<?xml version='1.1' encoding='UTF-8'?><flow-definition \
            plugin='workflow-job'><description>deploys <![CDATA[&]]> tests</description>\
            <definition plugin=\"workflow-cps\" \
            class=\"org.jenkinsci.plugins.workflow.cps.CpsFlowDefinition\">\
            <script>echo &apos;hi&apos;</script><sandbox>true</sandbox></definition>\
            <!-- saved by Jenkins --><disabled>false</disabled></flow-definition>";
        assert!(configs_equivalent(PIPELINE, rewritten));
    }

    #[test]
    fn element_order_text_and_attributes_matter() {
        let reordered = PIPELINE.replace(
            "<description>deploys &amp; tests</description>",
            "<disabled>false</disabled>",
        );
        assert!(!configs_equivalent(PIPELINE, &reordered));
        assert!(!configs_equivalent(
            PIPELINE,
            &PIPELINE.replace("echo 'hi'", "echo 'ho'")
        ));
        assert!(!configs_equivalent(
            PIPELINE,
            &PIPELINE.replace("workflow-cps\"", "x\"")
        ));
        assert!(!configs_equivalent(
            PIPELINE,
            &PIPELINE.replace("    <sandbox>true</sandbox>\n", "")
        ));
    }

    #[test]
    fn empty_elements_match_in_both_spellings() {
        assert!(configs_equivalent("<a><b/></a>", "<a>\n  <b></b>\n</a>"));
    }

    #[test]
    fn malformed_documents_are_never_equivalent() {
        assert!(!configs_equivalent("<a><b></a>", "<a><b></a>"));
        assert!(!configs_equivalent("<a/>", "<a/><b/>"));
        assert!(!configs_equivalent("", ""));
    }
}
