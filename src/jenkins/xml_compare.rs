//! Semantic comparison of config.xml documents: Jenkins rewrites the prologue (XML 1.1), the
//! indentation and the attribute order, so text comparison would see drift where there is none.
//!
//! A job's document is also changed by what runs in it: a declarative Jenkinsfile's
//! `parameters`, `triggers` and `options` directives (and the scripted `properties` step) set
//! job properties when a build starts, and record what they set in actions stored in the
//! job's `<actions>`. [`job_config_matches`] compares only what the JenkinsJob's spec declares
//! ([`Declared`]), so that what the Jenkinsfile legitimately owns is not "repaired" after
//! every build.

use quick_xml::Reader;
use quick_xml::events::{BytesStart, Event};

#[derive(Clone, Debug, PartialEq)]
struct Element {
    name: String,
    /// Sorted by name: attribute order carries no meaning.
    attributes: Vec<(String, String)>,
    children: Vec<Child>,
}

#[derive(Clone, Debug, PartialEq)]
enum Child {
    Element(Element),
    Text(String),
}

/// True when two config.xml documents say the same thing.
///
/// Ignored: the XML declaration (version, encoding), comments and processing instructions,
/// whitespace-only text (indentation), attribute order, the spelling of escapes and CDATA,
/// `<a/>` versus `<a></a>`, and `plugin="name@version"` attributes (a record of the plugin
/// version that saved the element, which Jenkins ignores when it reads one). Significant:
/// element names and order, other attribute values, other text. A malformed document is never
/// equivalent to anything.
pub fn configs_equivalent(a: &str, b: &str) -> bool {
    match (parse(a), parse(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// The parts of a job's config.xml that its JenkinsJob's spec declares.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Declared {
    /// Element names of the job properties (children of `<properties>`) whose kind the spec
    /// declares, whether the generated document has one or deliberately has none. A property
    /// of any other kind belongs to the Jenkinsfile (its `options` and `triggers` directives)
    /// or to a plugin, and is not compared.
    pub properties: Vec<String>,
    /// Whether the spec declares the job's parameters itself. When it does not, the parameter
    /// definitions of the live document that the generated one does not name belong to the
    /// Jenkinsfile (its `parameters` directive), which also decides their order: only the
    /// generated definitions are compared, by name. When it does, the list is compared as is.
    pub parameters: bool,
}

/// The element name of the job property holding parameter definitions.
pub const PARAMETERS_PROPERTY: &str = "hudson.model.ParametersDefinitionProperty";

/// True when the `live` config.xml of a job says what the `desired` one says about the parts
/// the spec declares ([`Declared`]), compared as [`configs_equivalent`] does otherwise.
///
/// Not compared: the root's `<actions>` (state that Jenkins and plugins attach to a job, such
/// as the trackers of what a Jenkinsfile set; the operator writes none), fields of the root
/// that the generated document does not set (a Jenkinsfile's `options { quietPeriod(...) }`
/// sets `<quietPeriod>`), the order of the job properties (Jenkins appends a property it
/// replaces), properties of kinds the spec does not declare, and parameter definitions the
/// Jenkinsfile owns (see [`Declared::parameters`]).
pub fn job_config_matches(live: &str, desired: &str, declared: &Declared) -> bool {
    let (Ok(mut live), Ok(mut desired)) = (parse(live), parse(desired)) else {
        return false;
    };
    let desired_parameters = parameter_names(&desired);
    let desired_fields: Vec<String> = desired
        .children
        .iter()
        .filter_map(|c| match c {
            Child::Element(e) => Some(e.name.clone()),
            Child::Text(_) => None,
        })
        .collect();
    live.children
        .retain(|c| !matches!(c, Child::Element(e) if !desired_fields.contains(&e.name)));
    for (document, is_live) in [(&mut live, true), (&mut desired, false)] {
        document
            .children
            .retain(|c| !matches!(c, Child::Element(e) if e.name == "actions"));
        for child in &mut document.children {
            let Child::Element(properties) = child else {
                continue;
            };
            if properties.name != "properties" {
                continue;
            }
            properties.children.retain(
                |c| matches!(c, Child::Element(p) if declared.properties.contains(&p.name)),
            );
            if !declared.parameters {
                for property in properties.children.iter_mut() {
                    if let Child::Element(property) = property
                        && property.name == PARAMETERS_PROPERTY
                    {
                        keep_parameters(property, &desired_parameters, is_live);
                    }
                }
            }
            properties.children.sort_by_key(|c| format!("{c:?}"));
        }
    }
    live == desired
}

/// The names of the parameter definitions of a job document.
fn parameter_names(root: &Element) -> Vec<String> {
    let mut names = Vec::new();
    for property in elements(root, "properties").flat_map(|p| elements(p, PARAMETERS_PROPERTY)) {
        for definitions in elements(property, "parameterDefinitions") {
            for definition in definitions.children.iter() {
                if let Child::Element(definition) = definition {
                    names.push(name_of(definition));
                }
            }
        }
    }
    names
}

/// Sorts a parameters property's definitions by name; in the live document, drops those the
/// generated document does not name.
fn keep_parameters(property: &mut Element, names: &[String], is_live: bool) {
    for child in &mut property.children {
        let Child::Element(definitions) = child else {
            continue;
        };
        if definitions.name != "parameterDefinitions" {
            continue;
        }
        if is_live {
            definitions.children.retain(|d| match d {
                Child::Element(d) => names.contains(&name_of(d)),
                Child::Text(_) => true,
            });
        }
        definitions.children.sort_by_key(|d| match d {
            Child::Element(d) => name_of(d),
            Child::Text(t) => t.clone(),
        });
    }
}

fn elements<'a>(parent: &'a Element, name: &'a str) -> impl Iterator<Item = &'a Element> {
    parent.children.iter().filter_map(move |c| match c {
        Child::Element(e) if e.name == name => Some(e),
        _ => None,
    })
}

/// The text of a definition's `<name>`.
fn name_of(definition: &Element) -> String {
    elements(definition, "name")
        .flat_map(|n| n.children.iter())
        .filter_map(|c| match c {
            Child::Text(t) => Some(t.as_str()),
            Child::Element(_) => None,
        })
        .collect()
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
        if attribute.key.as_ref() == "plugin" {
            continue;
        }
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
    use super::{Declared, PARAMETERS_PROPERTY, configs_equivalent, job_config_matches};

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
            &PIPELINE.replace("CpsFlowDefinition\"", "CpsScmFlowDefinition\"")
        ));
        assert!(!configs_equivalent(
            PIPELINE,
            &PIPELINE.replace("    <sandbox>true</sandbox>\n", "")
        ));
    }

    #[test]
    fn plugin_attributes_record_a_version_and_mean_nothing() {
        let saved = PIPELINE
            .replace(
                "plugin=\"workflow-job\"",
                "plugin=\"workflow-job@1540.v295eccc9778f\"",
            )
            .replace(" plugin=\"workflow-cps\"", "");
        assert!(configs_equivalent(PIPELINE, &saved));
    }

    /// A job as the operator generates it: one parameter of its own, a build discarder.
    const GENERATED: &str = r#"<flow-definition>
  <actions/>
  <description>d</description>
  <properties>
    <jenkins.model.BuildDiscarderProperty><strategy class="hudson.tasks.LogRotator">
      <numToKeep>5</numToKeep></strategy></jenkins.model.BuildDiscarderProperty>
    <hudson.model.ParametersDefinitionProperty><parameterDefinitions>
      <hudson.model.StringParameterDefinition><name>OURS</name><defaultValue/>
      </hudson.model.StringParameterDefinition>
    </parameterDefinitions></hudson.model.ParametersDefinitionProperty>
  </properties>
  <disabled>false</disabled>
</flow-definition>"#;

    /// The same job after a declarative Jenkinsfile ran in it: its parameter first, the
    /// parameters property moved to the end, options of its own, Jenkins' trackers.
    const AFTER_A_BUILD: &str = r#"<?xml version='1.1' encoding='UTF-8'?>
<flow-definition plugin="workflow-job@1540.v295eccc9778f">
  <actions>
    <org.jenkinsci.plugins.pipeline.modeldefinition.actions.DeclarativeJobAction plugin="p@1"/>
    <org.jenkinsci.plugins.pipeline.modeldefinition.actions.DeclarativeJobPropertyTrackerAction>
      <jobProperties><string>org.jenkinsci.plugins.workflow.job.properties.DurabilityHintJobProperty
      </string></jobProperties>
      <triggers/><parameters><string>THEIRS</string></parameters><options/>
    </org.jenkinsci.plugins.pipeline.modeldefinition.actions.DeclarativeJobPropertyTrackerAction>
  </actions>
  <description>d</description>
  <quietPeriod>30</quietPeriod>
  <properties>
    <jenkins.model.BuildDiscarderProperty><strategy class="hudson.tasks.LogRotator">
      <numToKeep>5</numToKeep></strategy></jenkins.model.BuildDiscarderProperty>
    <org.jenkinsci.plugins.workflow.job.properties.DurabilityHintJobProperty>
      <hint>PERFORMANCE_OPTIMIZED</hint>
    </org.jenkinsci.plugins.workflow.job.properties.DurabilityHintJobProperty>
    <hudson.model.ParametersDefinitionProperty><parameterDefinitions>
      <hudson.model.StringParameterDefinition><name>THEIRS</name><defaultValue>x</defaultValue>
      </hudson.model.StringParameterDefinition>
      <hudson.model.StringParameterDefinition><name>OURS</name><defaultValue></defaultValue>
      </hudson.model.StringParameterDefinition>
    </parameterDefinitions></hudson.model.ParametersDefinitionProperty>
  </properties>
  <disabled>false</disabled>
</flow-definition>"#;

    fn declared(parameters: bool) -> Declared {
        Declared {
            properties: vec![
                PARAMETERS_PROPERTY.to_string(),
                "jenkins.model.BuildDiscarderProperty".to_string(),
            ],
            parameters,
        }
    }

    #[test]
    fn what_a_jenkinsfile_sets_in_its_job_is_not_compared_when_the_spec_leaves_it() {
        assert!(job_config_matches(
            AFTER_A_BUILD,
            GENERATED,
            &declared(false)
        ));
        assert!(!configs_equivalent(AFTER_A_BUILD, GENERATED));
        // The same document compares equal to itself in any case.
        assert!(job_config_matches(GENERATED, GENERATED, &declared(true)));
    }

    #[test]
    fn what_the_spec_declares_is_still_compared() {
        let lenient = declared(false);
        // The spec's own parameters: the operator's one changed or gone.
        let changed = AFTER_A_BUILD.replace(
            "<defaultValue></defaultValue>",
            "<defaultValue>1</defaultValue>",
        );
        assert!(!job_config_matches(&changed, GENERATED, &lenient));
        let start = AFTER_A_BUILD
            .find("<hudson.model.StringParameterDefinition><name>OURS")
            .expect("the fixture declares the operator's parameter");
        let end = AFTER_A_BUILD[start..]
            .find("</hudson.model.StringParameterDefinition>")
            .expect("the operator's parameter is closed");
        let gone = format!(
            "{}{}",
            &AFTER_A_BUILD[..start],
            &AFTER_A_BUILD[start + end + "</hudson.model.StringParameterDefinition>".len()..]
        );
        assert!(!job_config_matches(&gone, GENERATED, &lenient));
        // A declared property changed or removed, and anything outside the properties.
        let retention =
            AFTER_A_BUILD.replace("<numToKeep>5</numToKeep>", "<numToKeep>9</numToKeep>");
        assert!(!job_config_matches(&retention, GENERATED, &lenient));
        let undisabled = AFTER_A_BUILD.replace("<disabled>false</disabled>", "");
        assert!(!job_config_matches(&undisabled, GENERATED, &lenient));
        let described = AFTER_A_BUILD.replace(
            "<description>d</description>",
            "<description>e</description>",
        );
        assert!(!job_config_matches(&described, GENERATED, &lenient));
        // A property of a kind the spec declares (here deliberately absent) may not appear.
        let mut strict_triggers = declared(false);
        strict_triggers
            .properties
            .push("org.jenkinsci.plugins.workflow.job.properties.DurabilityHintJobProperty".into());
        assert!(!job_config_matches(
            AFTER_A_BUILD,
            GENERATED,
            &strict_triggers
        ));
    }

    #[test]
    fn parameters_the_spec_lists_are_compared_as_a_list() {
        // Declared by the spec: another parameter is drift.
        assert!(!job_config_matches(
            AFTER_A_BUILD,
            GENERATED,
            &declared(true)
        ));
        // And so is another order; left to the Jenkinsfile, the order is Jenkins'.
        let two = |first: &str, second: &str| {
            format!(
                "<flow-definition><properties><{PARAMETERS_PROPERTY}><parameterDefinitions>\
                 <p><name>{first}</name></p><p><name>{second}</name></p>\
                 </parameterDefinitions></{PARAMETERS_PROPERTY}></properties></flow-definition>"
            )
        };
        let (ab, ba) = (two("A", "B"), two("B", "A"));
        assert!(!job_config_matches(&ba, &ab, &declared(true)));
        assert!(job_config_matches(&ba, &ab, &declared(false)));
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
