//! What a running declarative Pipeline does to its own job: at the start of each build,
//! pipeline-model-definition applies the Jenkinsfile's `parameters { ... }` directive to the
//! job's configuration (its `updateJobProperties` step), and records what it declared in an
//! action stored in the job's config.xml. Only parameters are modelled; `triggers` and
//! `options` work the same way in Jenkins.
//!
//! The rules, as Jenkins applies them:
//! - The parameters to apply are the Jenkinsfile's, in its order, followed by the job's
//!   existing parameters that the Jenkinsfile does not declare and did not declare in the
//!   previous build (by name, from the tracker action). Parameters set outside the Jenkinsfile
//!   (the UI, a posted config.xml) survive; one the Jenkinsfile stopped declaring goes.
//! - When that list differs from the job's (names, types, descriptions, values), the job's
//!   first `ParametersDefinitionProperty` is removed and a new one holding the list is added
//!   at the end of `<properties>` (none when the list is empty).
//! - The job gets a `DeclarativeJobAction` if it has none, and its
//!   `DeclarativeJobPropertyTrackerAction` is replaced (removed, then appended to `<actions>`)
//!   when the names it records change.
//! - The job is saved (its config.xml rewritten) only when something changed.

use crate::xml::{self, Element, Node};
use crate::{DeclaredParameter, Jenkinsfile};

const PARAMETERS_PROPERTY: &str = "hudson.model.ParametersDefinitionProperty";
const DECLARATIVE_JOB_ACTION: &str =
    "org.jenkinsci.plugins.pipeline.modeldefinition.actions.DeclarativeJobAction";
const TRACKER_ACTION: &str =
    "org.jenkinsci.plugins.pipeline.modeldefinition.actions.DeclarativeJobPropertyTrackerAction";
/// The `plugin` attribute Jenkins writes on the elements of pipeline-model-definition.
const PLUGIN: &str = "pipeline-model-definition@2.2255.v56a_15e805f12";

/// The config.xml of a pipeline job after a build of `jenkinsfile` started, or `None` when the
/// build changes nothing (or the job is not a pipeline job).
pub(crate) fn declarative_run(config: &str, jenkinsfile: &Jenkinsfile) -> Option<String> {
    let mut root = xml::parse(config).ok()?;
    if root.name != "flow-definition" {
        return None;
    }
    let existing = existing_parameters(&root);
    let previous = tracked_parameters(&root);
    let declared: Vec<Element> = jenkinsfile.parameters.iter().map(definition).collect();
    let declared_names: Vec<String> = jenkinsfile
        .parameters
        .iter()
        .map(|p| p.name.clone())
        .collect();

    let mut to_apply = declared.clone();
    to_apply.extend(
        existing
            .iter()
            .filter(|p| {
                let name = parameter_name(p);
                !declared_names.contains(&name)
                    && !previous.as_ref().is_some_and(|n| n.contains(&name))
            })
            .cloned(),
    );

    let mut changed = false;
    if !same_parameters(&to_apply, &existing) {
        let properties = child_mut(&mut root, "properties");
        if let Some(at) = properties
            .children
            .iter()
            .position(|n| matches!(n, Node::Element(e) if e.name == PARAMETERS_PROPERTY))
        {
            properties.children.remove(at);
        }
        if !to_apply.is_empty() {
            let definitions = element("parameterDefinitions", to_apply);
            properties.children.push(Node::Element(element(
                PARAMETERS_PROPERTY,
                vec![definitions],
            )));
        }
        changed = true;
    }

    let tracker_current = previous.as_ref().is_some_and(|names| {
        let mut names = names.clone();
        let mut declared = declared_names.clone();
        names.sort();
        declared.sort();
        names == declared
    });
    let actions = child_mut(&mut root, "actions");
    if !tracker_current {
        if !has_element(actions, DECLARATIVE_JOB_ACTION) {
            let mut action = element(DECLARATIVE_JOB_ACTION, Vec::new());
            action.attributes.push(("plugin".into(), PLUGIN.into()));
            actions.children.push(Node::Element(action));
        }
        actions
            .children
            .retain(|n| !matches!(n, Node::Element(e) if e.name == TRACKER_ACTION));
        actions
            .children
            .push(Node::Element(tracker(&declared_names)));
        changed = true;
    }
    changed.then(|| xml::to_document(&root))
}

/// The definitions of the job's first `ParametersDefinitionProperty` (the one Jenkins reads).
fn existing_parameters(root: &Element) -> Vec<Element> {
    root.child("properties")
        .and_then(|p| p.child(PARAMETERS_PROPERTY))
        .and_then(|p| p.child("parameterDefinitions"))
        .map(|d| d.elements().cloned().collect())
        .unwrap_or_default()
}

/// The parameter names the tracker action says the previous build declared, if the job has
/// the action.
fn tracked_parameters(root: &Element) -> Option<Vec<String>> {
    let tracker = root.child("actions")?.child(TRACKER_ACTION)?;
    Some(
        tracker
            .child("parameters")
            .map(|p| p.elements().map(Element::text).collect())
            .unwrap_or_default(),
    )
}

fn parameter_name(definition: &Element) -> String {
    definition.child_text("name").unwrap_or_default()
}

/// Jenkins' comparison: the same names, and for each name the same type, description and
/// content.
fn same_parameters(a: &[Element], b: &[Element]) -> bool {
    a.len() == b.len()
        && a.iter().all(|x| {
            b.iter()
                .find(|y| parameter_name(y) == parameter_name(x))
                .is_some_and(|y| same_element(x, y))
        })
}

/// Structural equality without the indentation.
fn same_element(a: &Element, b: &Element) -> bool {
    let a_children: Vec<&Element> = a.elements().collect();
    let b_children: Vec<&Element> = b.elements().collect();
    a.name == b.name
        && a.attributes == b.attributes
        && (!a_children.is_empty() || a.text() == b.text())
        && a_children.len() == b_children.len()
        && a_children
            .iter()
            .zip(&b_children)
            .all(|(x, y)| same_element(x, y))
}

/// A `string(...)` parameter of a `parameters` directive, as XStream writes it (no
/// `description` element when there is none).
fn definition(parameter: &DeclaredParameter) -> Element {
    let mut children = vec![leaf("name", &parameter.name)];
    if let Some(description) = &parameter.description {
        children.push(leaf("description", description));
    }
    children.push(leaf("defaultValue", &parameter.default_value));
    children.push(leaf("trim", "false"));
    element("hudson.model.StringParameterDefinition", children)
}

fn tracker(names: &[String]) -> Element {
    let strings = names.iter().map(|n| leaf("string", n)).collect();
    let mut tracker = element(
        TRACKER_ACTION,
        vec![
            element("jobProperties", Vec::new()),
            element("triggers", Vec::new()),
            element("parameters", strings),
            element("options", Vec::new()),
        ],
    );
    tracker.attributes.push(("plugin".into(), PLUGIN.into()));
    tracker
}

fn element(name: &str, children: Vec<Element>) -> Element {
    Element {
        name: name.into(),
        attributes: Vec::new(),
        children: children.into_iter().map(Node::Element).collect(),
    }
}

fn leaf(name: &str, text: &str) -> Element {
    Element {
        name: name.into(),
        attributes: Vec::new(),
        children: vec![Node::Text(text.into())],
    }
}

fn has_element(parent: &Element, name: &str) -> bool {
    parent.child(name).is_some()
}

/// The root's child `name`, added (empty, at the end) when missing.
fn child_mut<'a>(root: &'a mut Element, name: &str) -> &'a mut Element {
    let at = root
        .children
        .iter()
        .position(|n| matches!(n, Node::Element(e) if e.name == name));
    let at = match at {
        Some(at) => at,
        None => {
            root.children.push(Node::Element(element(name, Vec::new())));
            root.children.len() - 1
        }
    };
    match &mut root.children[at] {
        Node::Element(e) => e,
        // The position was found (or pushed) as an element just above.
        Node::Text(_) => unreachable!("child_mut points at an element"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A job as the operator writes it: its own parameter, another property before it.
    const OPERATOR_JOB: &str = r#"<?xml version="1.1" encoding="UTF-8"?>
<flow-definition>
  <actions/>
  <description>d</description>
  <properties>
    <hudson.model.ParametersDefinitionProperty>
      <parameterDefinitions>
        <hudson.model.StringParameterDefinition>
          <name>JENKINS_OPERATOR_BUILD_ID</name>
          <description>Set by jenkins-operator</description>
          <defaultValue></defaultValue>
          <trim>false</trim>
        </hudson.model.StringParameterDefinition>
      </parameterDefinitions>
    </hudson.model.ParametersDefinitionProperty>
    <jenkins.model.BuildDiscarderProperty>
      <strategy class="hudson.tasks.LogRotator"><numToKeep>5</numToKeep></strategy>
    </jenkins.model.BuildDiscarderProperty>
  </properties>
  <definition class="org.jenkinsci.plugins.workflow.cps.CpsFlowDefinition">
    <script>pipeline { }</script>
  </definition>
  <disabled>false</disabled>
</flow-definition>"#;

    fn jenkinsfile(names: &[&str]) -> Jenkinsfile {
        Jenkinsfile {
            parameters: names
                .iter()
                .map(|n| DeclaredParameter {
                    name: n.to_string(),
                    default_value: "x".into(),
                    description: None,
                })
                .collect(),
        }
    }

    fn parameter_names(config: &str) -> Vec<String> {
        existing_parameters(&xml::parse(config).unwrap())
            .iter()
            .map(parameter_name)
            .collect()
    }

    fn property_names(config: &str) -> Vec<String> {
        let root = xml::parse(config).unwrap();
        root.child("properties")
            .unwrap()
            .elements()
            .map(|e| e.name.clone())
            .collect()
    }

    #[test]
    fn the_first_build_puts_the_jenkinsfiles_parameters_first_and_records_them() {
        let after = declarative_run(OPERATOR_JOB, &jenkinsfile(&["GREETING"])).unwrap();
        assert_eq!(
            parameter_names(&after),
            ["GREETING", "JENKINS_OPERATOR_BUILD_ID"]
        );
        // The replaced property moved to the end.
        assert_eq!(
            property_names(&after),
            ["jenkins.model.BuildDiscarderProperty", PARAMETERS_PROPERTY]
        );
        let root = xml::parse(&after).unwrap();
        let actions: Vec<String> = root
            .child("actions")
            .unwrap()
            .elements()
            .map(|e| e.name.clone())
            .collect();
        assert_eq!(actions, [DECLARATIVE_JOB_ACTION, TRACKER_ACTION]);
        assert_eq!(
            tracked_parameters(&root),
            Some(vec!["GREETING".to_string()])
        );
        assert!(after.contains(&format!("plugin=\"{PLUGIN}\"")));
        assert!(after.starts_with("<?xml version='1.1' encoding='UTF-8'?>"));

        // The next build with the same Jenkinsfile saves nothing.
        assert_eq!(declarative_run(&after, &jenkinsfile(&["GREETING"])), None);
    }

    #[test]
    fn a_parameter_the_jenkinsfile_stops_declaring_goes_and_others_stay() {
        let first = declarative_run(OPERATOR_JOB, &jenkinsfile(&["A", "B"])).unwrap();
        let second = declarative_run(&first, &jenkinsfile(&["B"])).unwrap();
        assert_eq!(parameter_names(&second), ["B", "JENKINS_OPERATOR_BUILD_ID"]);
        // With no parameters left to declare, the tracker empties and the job keeps the rest.
        let third = declarative_run(&second, &jenkinsfile(&[])).unwrap();
        assert_eq!(parameter_names(&third), ["JENKINS_OPERATOR_BUILD_ID"]);
        assert_eq!(
            tracked_parameters(&xml::parse(&third).unwrap()),
            Some(Vec::new())
        );
    }

    #[test]
    fn without_its_tracker_the_jenkinsfile_cannot_remove_what_it_declared_before() {
        // A config.xml posted over the job (the operator repairing it) drops the tracker:
        // what the Jenkinsfile declared before counts as set outside it.
        let first = declarative_run(OPERATOR_JOB, &jenkinsfile(&["A"])).unwrap();
        let posted = first.replace(TRACKER_ACTION, "gone");
        let after = declarative_run(&posted, &jenkinsfile(&[])).unwrap();
        assert_eq!(parameter_names(&after), ["A", "JENKINS_OPERATOR_BUILD_ID"]);
    }

    #[test]
    fn only_pipeline_jobs_run_a_jenkinsfile() {
        let folder = "<com.cloudbees.hudson.plugins.folder.Folder/>";
        assert_eq!(declarative_run(folder, &jenkinsfile(&["A"])), None);
    }
}
