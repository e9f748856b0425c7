//! A small XML tree read with quick-xml: enough to check that a config.xml is well formed and to
//! read what Jenkins reads from it (root element, `disabled`, `description`, parameters).

use quick_xml::Reader;
use quick_xml::events::Event;

/// An element with its attributes (in document order) and children.
#[derive(Debug, Clone, PartialEq)]
pub struct Element {
    pub name: String,
    pub attributes: Vec<(String, String)>,
    pub children: Vec<Node>,
}

/// A child of an element.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    Element(Element),
    Text(String),
}

impl Element {
    /// The first child element with this name.
    pub fn child(&self, name: &str) -> Option<&Element> {
        self.elements().find(|e| e.name == name)
    }

    /// The child elements, in order.
    pub fn elements(&self) -> impl Iterator<Item = &Element> {
        self.children.iter().filter_map(|n| match n {
            Node::Element(e) => Some(e),
            Node::Text(_) => None,
        })
    }

    /// The concatenated text of this element's direct text children.
    pub fn text(&self) -> String {
        self.children
            .iter()
            .filter_map(|n| match n {
                Node::Text(t) => Some(t.as_str()),
                Node::Element(_) => None,
            })
            .collect()
    }

    /// The text of the named child, if any.
    pub fn child_text(&self, name: &str) -> Option<String> {
        self.child(name).map(Element::text)
    }
}

/// Parses a whole document into its root element, or explains why it is not well formed.
pub fn parse(text: &str) -> Result<Element, String> {
    let mut reader = Reader::from_str(text);
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    loop {
        let event = reader.read_event().map_err(|e| e.to_string())?;
        match event {
            Event::Start(start) | Event::Empty(start) if root.is_some() && stack.is_empty() => {
                let _ = start;
                return Err("content after the root element".into());
            }
            Event::Start(start) => stack.push(open(&start)?),
            Event::Empty(start) => {
                let element = open(&start)?;
                close(&mut stack, &mut root, element);
            }
            Event::End(end) => {
                let element = stack.pop().ok_or("unexpected end tag")?;
                if end.name().as_ref() != element.name {
                    return Err(format!("mismatched end tag for {}", element.name));
                }
                close(&mut stack, &mut root, element);
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
    if let Some(open) = stack.last() {
        return Err(format!("unclosed element {}", open.name));
    }
    root.ok_or_else(|| "no root element".into())
}

fn open(start: &quick_xml::events::BytesStart<'_>) -> Result<Element, String> {
    let mut attributes = Vec::new();
    for attribute in start.attributes() {
        let attribute = attribute.map_err(|e| e.to_string())?;
        let value = attribute
            .normalized_value(quick_xml::XmlVersion::Implicit1_0)
            .map_err(|e| e.to_string())?;
        attributes.push((attribute.key.as_ref().to_string(), value.into_owned()));
    }
    Ok(Element {
        name: start.name().as_ref().to_string(),
        attributes,
        children: Vec::new(),
    })
}

fn close(stack: &mut [Element], root: &mut Option<Element>, element: Element) {
    match stack.last_mut() {
        Some(parent) => parent.children.push(Node::Element(element)),
        None => *root = Some(element),
    }
}

fn push_text(stack: &mut [Element], text: &str) -> Result<(), String> {
    match stack.last_mut() {
        Some(parent) => {
            if let Some(Node::Text(previous)) = parent.children.last_mut() {
                previous.push_str(text);
            } else {
                parent.children.push(Node::Text(text.to_string()));
            }
            Ok(())
        }
        None if text.trim().is_empty() => Ok(()),
        None => Err("text outside the root element".into()),
    }
}

/// Escapes text for an XML element body.
pub fn escape(text: &str) -> String {
    quick_xml::escape::escape(text).into_owned()
}

/// Writes a document the way Jenkins saves an item (XStream's pretty printer): the XML 1.1
/// prologue, two spaces of indentation per level, `<a/>` for an empty element, a leaf's text
/// exactly as it is (escaped), and the indentation of the source dropped.
pub fn to_document(root: &Element) -> String {
    let mut out = String::from("<?xml version='1.1' encoding='UTF-8'?>\n");
    write_element(&mut out, root, 0);
    out
}

fn write_element(out: &mut String, element: &Element, depth: usize) {
    let indent = "  ".repeat(depth);
    out.push_str(&indent);
    out.push('<');
    out.push_str(&element.name);
    for (key, value) in &element.attributes {
        out.push_str(&format!(" {key}=\"{}\"", jenkins_escape(value)));
    }
    let has_elements = element.elements().next().is_some();
    let text = element.text();
    if !has_elements && text.is_empty() {
        out.push_str("/>\n");
    } else if !has_elements {
        out.push('>');
        out.push_str(&jenkins_escape(&text));
        out.push_str(&format!("</{}>\n", element.name));
    } else {
        out.push_str(">\n");
        for child in element.elements() {
            write_element(out, child, depth + 1);
        }
        out.push_str(&format!("{indent}</{}>\n", element.name));
    }
}

/// XStream's escaping: markup characters, quotes, and a carriage return as a reference (a
/// literal one would be read back as a line feed).
fn jenkins_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\r' => out.push_str("&#xd;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unclosed_and_mismatched_documents_are_rejected() {
        assert!(parse("<a><b></a>").is_err());
        assert!(parse("<a><b>").is_err());
        assert!(parse("<a/><b/>").is_err());
        assert!(parse("").is_err());
    }

    #[test]
    fn a_saved_document_reads_back_the_same_without_the_source_indentation() {
        let source = "<?xml version='1.0'?><a x=\"1 &amp; 2\">\n    <b>  keep&#13;\n me </b>\n\
                      <c/><d><e>&lt;&apos;</e></d></a>";
        let root = parse(source).unwrap();
        let saved = to_document(&root);
        assert_eq!(
            saved,
            "<?xml version='1.1' encoding='UTF-8'?>\n<a x=\"1 &amp; 2\">\n  \
             <b>  keep&#xd;\n me </b>\n  <c/>\n  <d>\n    <e>&lt;&apos;</e>\n  </d>\n</a>\n"
        );
        let again = parse(&saved).unwrap();
        assert_eq!(again.child_text("b").as_deref(), Some("  keep\r\n me "));
        assert_eq!(to_document(&again), saved);
    }

    #[test]
    fn entities_and_cdata_become_text() {
        let root =
            parse("<?xml version='1.1' encoding='UTF-8'?><a>x &amp; <![CDATA[<y>]]>&#65;</a>")
                .unwrap();
        assert_eq!(root.text(), "x & <y>A");
    }
}
