//! S3's XML: a small writer for responses and a small element tree for request bodies (both on
//! quick-xml).

use quick_xml::events::Event;
use quick_xml::Reader;

pub const S3_NAMESPACE: &str = "http://s3.amazonaws.com/doc/2006-03-01/";

/// Builds an XML document element by element, escaping text.
pub struct XmlWriter {
    out: String,
}

impl XmlWriter {
    /// `<?xml …?><root xmlns="namespace">`
    pub fn new(root: &str, namespace: Option<&str>) -> Self {
        let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        out.push('<');
        out.push_str(root);
        if let Some(ns) = namespace {
            out.push_str(" xmlns=\"");
            out.push_str(ns);
            out.push('"');
        }
        out.push('>');
        XmlWriter { out }
    }

    pub fn open(&mut self, tag: &str) -> &mut Self {
        self.out.push('<');
        self.out.push_str(tag);
        self.out.push('>');
        self
    }

    pub fn close(&mut self, tag: &str) -> &mut Self {
        self.out.push_str("</");
        self.out.push_str(tag);
        self.out.push('>');
        self
    }

    pub fn elem(&mut self, tag: &str, text: impl AsRef<str>) -> &mut Self {
        self.open(tag);
        self.out.push_str(&quick_xml::escape::escape(text.as_ref()));
        self.close(tag)
    }

    /// Escaped text inside the current element.
    pub fn text(&mut self, text: &str) -> &mut Self {
        self.out.push_str(&quick_xml::escape::escape(text));
        self
    }

    pub fn elem_opt(&mut self, tag: &str, text: Option<impl AsRef<str>>) -> &mut Self {
        if let Some(t) = text {
            self.elem(tag, t);
        }
        self
    }

    pub fn finish(mut self, root: &str) -> String {
        self.close(root);
        self.out
    }
}

/// One element of a parsed document: local name, text content, children.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Element {
    pub name: String,
    pub text: String,
    pub children: Vec<Element>,
}

impl Element {
    pub fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    pub fn children<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> + 'a {
        self.children.iter().filter(move |c| c.name == name)
    }

    /// The text of a child element.
    pub fn text_of(&self, name: &str) -> Option<&str> {
        self.child(name).map(|c| c.text.as_str())
    }
}

fn local(name: &[u8]) -> String {
    let name = String::from_utf8_lossy(name);
    match name.rsplit_once(':') {
        Some((_, l)) => l.to_string(),
        None => name.into_owned(),
    }
}

/// Parses a whole document; `None` when it is not well-formed (or empty).
pub fn parse(bytes: &[u8]) -> Option<Element> {
    let mut reader = Reader::from_reader(bytes);
    let mut stack: Vec<Element> = Vec::new();
    let mut root = None;
    loop {
        match reader.read_event().ok()? {
            Event::Start(e) => stack.push(Element { name: local(e.name().as_ref()), ..Default::default() }),
            Event::Empty(e) => {
                let el = Element { name: local(e.name().as_ref()), ..Default::default() };
                match stack.last_mut() {
                    Some(parent) => parent.children.push(el),
                    None => root = Some(el),
                }
            }
            Event::End(_) => {
                let el = stack.pop()?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(el),
                    None => root = Some(el),
                }
            }
            Event::Text(t) => {
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&t.decode().ok()?);
                } else if !t.decode().ok()?.trim().is_empty() {
                    return None;
                }
            }
            Event::CData(t) => {
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&t.decode().ok()?);
                }
            }
            Event::GeneralRef(r) => {
                let top = stack.last_mut()?;
                if r.is_char_ref() {
                    top.text.push(r.resolve_char_ref().ok()??);
                } else {
                    let name = r.decode().ok()?;
                    top.text.push_str(quick_xml::escape::resolve_predefined_entity(&name)?);
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if !stack.is_empty() {
        return None;
    }
    root
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_and_parses() {
        let mut w = XmlWriter::new("Root", Some(S3_NAMESPACE));
        w.open("A").elem("Key", "a <&> \"b\"").close("A").elem_opt("None", None::<&str>);
        let doc = w.finish("Root");
        assert!(doc.contains("<Key>a &lt;&amp;&gt; &quot;b&quot;</Key>"), "{doc}");
        let el = parse(doc.as_bytes()).unwrap();
        assert_eq!(el.name, "Root");
        assert_eq!(el.child("A").unwrap().text_of("Key"), Some("a <&> \"b\""));
    }

    #[test]
    fn keeps_whitespace_in_text_and_rejects_garbage() {
        let el = parse(b"<Delete><Object><Key> sp &#x41; </Key></Object><Quiet/></Delete>").unwrap();
        assert_eq!(el.child("Object").unwrap().text_of("Key"), Some(" sp A "));
        assert!(el.child("Quiet").is_some());
        assert!(parse(b"<Delete><Object></Delete>").is_none());
        assert!(parse(b"not xml").is_none());
        assert!(parse(b"").is_none());
    }
}
