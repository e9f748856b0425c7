//! A small XML tree for tests: generated documents are parsed back with quick-xml's reader and
//! asserted element by element, never compared as text.

use quick_xml::escape::resolve_predefined_entity;
use quick_xml::events::{BytesStart, Event};
use quick_xml::{Reader, XmlVersion};

/// An element: its name, attributes, child elements and (for leaves) its text.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Node {
    pub name: String,
    pub attributes: Vec<(String, String)>,
    pub children: Vec<Node>,
    pub text: String,
}

impl Node {
    /// The first child named `name`; panics (a test failure) when there is none.
    pub fn child(&self, name: &str) -> &Node {
        self.children
            .iter()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("<{}> has no <{name}>: {:#?}", self.name, self.names()))
    }

    /// Whether there is a child named `name`.
    pub fn has(&self, name: &str) -> bool {
        self.children.iter().any(|c| c.name == name)
    }

    /// The node at a `/`-separated path of child names.
    pub fn at(&self, path: &str) -> &Node {
        path.split('/').fold(self, |node, name| node.child(name))
    }

    /// The text at a path.
    pub fn text_at(&self, path: &str) -> &str {
        &self.at(path).text
    }

    /// The value of an attribute.
    pub fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The names of the children, in order.
    pub fn names(&self) -> Vec<&str> {
        self.children.iter().map(|c| c.name.as_str()).collect()
    }
}

/// Parses a document; panics (a test failure) on malformed XML. Text follows the XML rules of
/// the declared version (line ends normalized, references resolved), as Jenkins would read it.
pub fn parse(xml: &str) -> Node {
    let mut reader = Reader::from_str(xml);
    reader.config_mut().enable_all_checks(true);
    let mut version = XmlVersion::Implicit1_0;
    let mut stack: Vec<Node> = vec![Node::default()];
    loop {
        let event = reader.read_event().expect("well-formed XML");
        match event {
            Event::Decl(decl) => version = decl.xml_version().expect("a valid version"),
            Event::Start(start) => stack.push(open(&start, version)),
            Event::Empty(start) => {
                let node = open(&start, version);
                stack.last_mut().expect("a parent").children.push(node);
            }
            Event::End(_) => {
                let node = stack.pop().expect("an open element");
                stack.last_mut().expect("a parent").children.push(node);
            }
            Event::Text(text) => {
                let text = text.xml_content(version);
                stack.last_mut().expect("an element").text.push_str(&text);
            }
            Event::CData(data) => {
                let data = data.xml_content(version);
                stack.last_mut().expect("an element").text.push_str(&data);
            }
            Event::GeneralRef(reference) => {
                let resolved = match reference.resolve_char_ref().expect("a valid reference") {
                    Some(c) => c.to_string(),
                    None => resolve_predefined_entity(&reference.xml_content(version))
                        .expect("a predefined entity")
                        .to_string(),
                };
                stack
                    .last_mut()
                    .expect("an element")
                    .text
                    .push_str(&resolved);
            }
            Event::Eof => break,
            Event::Comment(_) | Event::PI(_) | Event::DocType(_) => {}
        }
    }
    let mut document = stack.pop().expect("the document");
    assert!(stack.is_empty(), "unclosed elements");
    assert_eq!(document.children.len(), 1, "one root element");
    let mut root = document.children.remove(0);
    drop_layout(&mut root);
    root
}

fn open(start: &BytesStart<'_>, version: XmlVersion) -> Node {
    let name = start.name().as_ref().to_string();
    let attributes = start
        .attributes()
        .map(|a| {
            let a = a.expect("a valid attribute");
            let key = a.key.as_ref().to_string();
            let value = a
                .normalized_value(version)
                .expect("an escaped value")
                .into_owned();
            (key, value)
        })
        .collect();
    Node {
        name,
        attributes,
        ..Node::default()
    }
}

/// Text between child elements is indentation: elements with children keep none.
fn drop_layout(node: &mut Node) {
    if !node.children.is_empty() {
        assert!(
            node.text.trim().is_empty(),
            "mixed content in <{}>",
            node.name
        );
        node.text.clear();
    }
    node.children.iter_mut().for_each(drop_layout);
}
