//! Loading one PDF for faxing: junk before the header is ignored, an empty user password
//! is tried on encrypted files, and the page tree is walked with loop and depth checks.
//! Each page gets the attributes it inherits (MediaBox, CropBox, Resources, Rotate)
//! written onto itself, so the pages can move into another document unchanged. Last,
//! each page is fitted to the portrait fax paper by [`super::pagefit`].

use std::collections::HashSet;
use std::io::Read;
use std::rc::Rc;

use lopdf::{Dictionary, Document, LoadOptions, Object, ObjectId, Stream};
use tracing::{debug, warn};

use super::Limits;
use super::flatten::flatten_forms;
use super::kind::{PDF_HEADER_WINDOW, Refusal, find};
use super::pagefit::fit_pages;

/// Maximum nesting of the page tree. Producers keep it shallow (a balanced tree of a
/// million pages with ten kids per node is six levels); deeper trees are rejected.
const MAX_PAGE_TREE_DEPTH: usize = 64;

/// MediaBox given to a page that has none, own or inherited: US Letter (612 x 792
/// points).
const DEFAULT_MEDIA_BOX: [i64; 4] = [0, 0, 612, 792];

/// The page attributes a page inherits from its ancestors in the page tree.
const INHERITED_KEYS: [&[u8]; 4] = [b"Resources", b"MediaBox", b"CropBox", b"Rotate"];

/// A loaded document with its pages ready to merge.
pub(crate) struct PdfPages {
    pub(crate) document: Document,
    /// Page objects in page order. Each carries its inherited attributes and has no
    /// `/Parent`. A page listed twice in the page tree appears as two objects.
    pub(crate) pages: Vec<ObjectId>,
}

/// Loads a PDF and checks it can be faxed whole: readable, not password-protected, not a
/// dynamic XFA form, a page tree without loops whose page count matches `/Count`, at
/// most `page_budget` pages, and every page's content present and decodable. Filled-in
/// form fields are drawn into the pages, and the pages are fitted to `limits.paper`.
pub(crate) fn load(data: &[u8], limits: &Limits, page_budget: u32) -> Result<PdfPages, Refusal> {
    if data.len() > limits.max_document_bytes {
        return Err(Refusal::Rejected(format!(
            "the file is larger than the maximum of {} bytes",
            limits.max_document_bytes
        )));
    }
    let window = &data[..data.len().min(PDF_HEADER_WINDOW)];
    let start = find(window, b"%PDF-").ok_or_else(|| {
        Refusal::Rejected("the file is not a PDF: it has no %PDF- header".to_string())
    })?;
    if start > 0 {
        debug!(ignored_bytes = start, "ignoring bytes before the PDF header");
    }

    let options = LoadOptions { max_decompressed_size: Some(limits.max_stream_bytes), ..LoadOptions::default() };
    let mut document = match Document::load_mem_with_options(&data[start..], options) {
        Ok(document) => document,
        Err(lopdf::Error::InvalidPassword) => return Err(password_protected()),
        Err(error) => {
            warn!(%error, "PDF cannot be read");
            return Err(Refusal::Rejected("the PDF is damaged and cannot be read".to_string()));
        }
    };
    if let Some(recovery) = document.xref_recovery {
        warn!(?recovery, "PDF cross-reference data was damaged and has been repaired");
    }
    // lopdf decrypts a file that opens with the empty user password (owner-password-only
    // files) and removes `/Encrypt`. The entry stays only when a password is needed.
    if document.is_encrypted() {
        return Err(password_protected());
    }
    reject_dynamic_xfa(&document)?;

    let pages = collect_pages(&mut document, page_budget)?;
    flatten_forms(&mut document, &pages);
    check_contents(&document, &pages, limits.max_stream_bytes)?;
    fit_pages(&mut document, &pages, limits.paper, limits.max_stream_bytes);
    debug!(pages = pages.len(), version = %document.version, "PDF loaded");
    Ok(PdfPages { document, pages })
}

fn password_protected() -> Refusal {
    Refusal::Rejected("the PDF is password-protected; send it without a password".to_string())
}

/// Rejects a dynamic XFA form. Its pages contain only a "please wait" notice, and Adobe
/// Reader draws the real form from XML, which a fax cannot show.
fn reject_dynamic_xfa(document: &Document) -> Result<(), Refusal> {
    let needs_rendering = document
        .catalog()
        .and_then(|catalog| catalog.get_deref(b"AcroForm", document))
        .and_then(Object::as_dict)
        .and_then(|form| form.get_deref(b"NeedsRendering", document))
        .and_then(Object::as_bool)
        .unwrap_or(false);
    if needs_rendering {
        return Err(Refusal::Rejected(
            "the PDF is a dynamic XFA form, which only Adobe Reader can display; print it to a new PDF first"
                .to_string(),
        ));
    }
    Ok(())
}

/// Inheritable attribute values on the path from the root to a node.
#[derive(Default)]
struct Inherited {
    values: [Option<Object>; 4],
}

/// Walks the page tree depth first, in page order, and writes the inherited attributes
/// onto each page.
fn collect_pages(document: &mut Document, page_budget: u32) -> Result<Vec<ObjectId>, Refusal> {
    let root_id = document
        .catalog()
        .and_then(|catalog| catalog.get(b"Pages"))
        .and_then(Object::as_reference)
        .map_err(|_| damaged_tree("the document has no page tree"))?;
    let declared_count = document
        .get_dictionary(root_id)
        .ok()
        .and_then(|root| root.get_deref(b"Count", document).ok())
        .and_then(|count| count.as_i64().ok());
    // `/Count` is not trusted before the walk: a file that claims 100000 pages but has
    // one is damaged, not too long. The walk itself stops at the page budget.

    let mut pages = Vec::new();
    // Every intermediate node is visited once. A second visit means a loop or a subtree
    // shared between two parents, which both leave the page order undefined.
    let mut visited_nodes = HashSet::new();
    let mut visited_pages = HashSet::new();
    let mut stack: Vec<(ObjectId, Rc<Inherited>, usize)> = vec![(root_id, Rc::new(Inherited::default()), 0)];

    while let Some((node_id, inherited, depth)) = stack.pop() {
        let node = document
            .get_dictionary(node_id)
            .map_err(|_| damaged_tree(&format!("page {} is missing", pages.len() + 1)))?;

        if is_page_tree_node(node) {
            if !visited_nodes.insert(node_id) {
                return Err(Refusal::Rejected("the PDF is damaged: its page tree contains a loop".to_string()));
            }
            if depth >= MAX_PAGE_TREE_DEPTH {
                return Err(damaged_tree("the page tree is nested too deep"));
            }
            let kids = kid_references(document, node)?;
            let inherited = Rc::new(inherit(document, node, &inherited));
            for kid in kids.into_iter().rev() {
                stack.push((kid, Rc::clone(&inherited), depth + 1));
            }
            continue;
        }

        if pages.len() >= page_budget as usize {
            let over_budget = page_budget.saturating_add(1);
            let pages = declared_count.and_then(|count| u32::try_from(count).ok()).unwrap_or(over_budget);
            return Err(Refusal::TooManyPages { pages: pages.max(over_budget) });
        }
        let page_id = if visited_pages.insert(node_id) {
            node_id
        } else {
            // The same page listed twice is printed twice, so the second listing gets its
            // own object in the merged page tree.
            let copy = document.get_dictionary(node_id).cloned().map_err(|_| damaged_tree("a page is missing"))?;
            document.add_object(copy)
        };
        materialize_page(document, page_id, &inherited);
        pages.push(page_id);
    }

    if pages.is_empty() {
        return Err(Refusal::Rejected("the PDF has no pages".to_string()));
    }
    if let Some(count) = declared_count
        && count != pages.len() as i64
    {
        return Err(damaged_tree(&format!(
            "its page tree declares {count} pages but contains {}",
            pages.len()
        )));
    }
    Ok(pages)
}

fn damaged_tree(detail: &str) -> Refusal {
    Refusal::Rejected(format!("the PDF is damaged: {detail}"))
}

fn is_page_tree_node(node: &Dictionary) -> bool {
    match node.get(b"Type").and_then(Object::as_name) {
        Ok(b"Pages") => true,
        Ok(b"Page") => false,
        _ => node.has(b"Kids"),
    }
}

fn kid_references(document: &Document, node: &Dictionary) -> Result<Vec<ObjectId>, Refusal> {
    let kids = node
        .get_deref(b"Kids", document)
        .and_then(Object::as_array)
        .map_err(|_| damaged_tree("a page tree node has no list of kids"))?;
    kids.iter()
        .map(|kid| kid.as_reference().map_err(|_| damaged_tree("a page tree node lists a kid that is not a reference")))
        .collect()
}

/// Returns the attributes a node passes to its kids: its own where set, else those of
/// its ancestors. A null value or a reference to a missing object counts as unset.
fn inherit(document: &Document, node: &Dictionary, parent: &Inherited) -> Inherited {
    let mut values = parent.values.clone();
    for (slot, key) in values.iter_mut().zip(INHERITED_KEYS) {
        if let Some(value) = own_attribute(document, node, key) {
            *slot = Some(value);
        }
    }
    Inherited { values }
}

fn own_attribute(document: &Document, node: &Dictionary, key: &[u8]) -> Option<Object> {
    let value = node.get(key).ok()?;
    match document.dereference(value) {
        Ok((_, Object::Null)) | Err(_) => None,
        Ok(_) => Some(value.clone()),
    }
}

/// Writes the inherited attributes onto a page that lacks them, defaults the required
/// ones, and removes `/Parent`, which the merge sets anew.
fn materialize_page(document: &mut Document, page_id: ObjectId, inherited: &Inherited) {
    let Ok(page) = document.get_dictionary(page_id) else {
        return;
    };
    let missing: Vec<(&[u8], Object)> = INHERITED_KEYS
        .iter()
        .zip(&inherited.values)
        .filter(|(key, _)| own_attribute(document, page, key).is_none())
        .filter_map(|(key, value)| value.clone().map(|value| (*key, value)))
        .collect();
    let has_media_box = own_attribute(document, page, b"MediaBox").is_some()
        || missing.iter().any(|(key, _)| *key == b"MediaBox");
    let has_resources = own_attribute(document, page, b"Resources").is_some()
        || missing.iter().any(|(key, _)| *key == b"Resources");
    let has_rotate =
        own_attribute(document, page, b"Rotate").is_some() || missing.iter().any(|(key, _)| *key == b"Rotate");

    let Ok(page) = document.get_dictionary_mut(page_id) else {
        return;
    };
    for (key, value) in missing {
        page.set(key, value);
    }
    if !has_media_box {
        warn!(?page_id, "PDF page has no MediaBox; using US Letter");
        page.set("MediaBox", DEFAULT_MEDIA_BOX.iter().map(|&n| Object::Integer(n)).collect::<Vec<_>>());
    }
    if !has_resources {
        page.set("Resources", Dictionary::new());
    }
    if !has_rotate {
        page.set("Rotate", 0);
    }
    page.set("Type", Object::Name(b"Page".to_vec()));
    page.remove(b"Parent");
}

/// Checks that every content stream of every page is present and decodes, so a file
/// that lost objects or has a broken stream is rejected instead of faxed with blank or
/// missing pages.
fn check_contents(document: &Document, pages: &[ObjectId], max_stream_bytes: usize) -> Result<(), Refusal> {
    for (index, page_id) in pages.iter().enumerate() {
        let page_number = index + 1;
        let Ok(page) = document.get_dictionary(*page_id) else {
            return Err(damaged_tree(&format!("page {page_number} is missing")));
        };
        let Ok(contents) = page.get(b"Contents") else {
            // A page without content is a blank page.
            continue;
        };
        let streams: Vec<&Object> = match document.dereference(contents) {
            Ok((_, Object::Array(items))) => items.iter().collect(),
            Ok((_, Object::Null)) => continue,
            Ok(_) | Err(_) => vec![contents],
        };
        for stream in streams {
            let Ok((_, Object::Stream(stream))) = document.dereference(stream) else {
                return Err(Refusal::Rejected(format!(
                    "the PDF is damaged: the content of page {page_number} is missing"
                )));
            };
            if let Err(error) = check_stream_decodes(stream, max_stream_bytes) {
                warn!(page = page_number, %error, "PDF page content cannot be decoded");
                return Err(Refusal::Rejected(format!(
                    "the PDF is damaged: the content of page {page_number} cannot be decoded"
                )));
            }
        }
    }
    Ok(())
}

/// Decodes a content stream to check that it is whole. Flate, the filter of nearly all
/// content streams, is checked here because lopdf 0.47 returns what it could decode of a
/// cut or corrupt Flate stream, or nothing, without an error. The Adler-32 checksum is not
/// checked, as lopdf accepts streams whose only fault is a wrong checksum.
fn check_stream_decodes(stream: &Stream, max_bytes: usize) -> Result<(), String> {
    let filters = stream.filters().unwrap_or_default();
    if filters.is_empty() {
        return Ok(());
    }
    if filters == [b"FlateDecode".as_slice()] {
        return check_zlib(&stream.content, max_bytes);
    }
    match stream.decompressed_content_with_limit(max_bytes) {
        Ok(decoded) if decoded.is_empty() && !stream.content.is_empty() => {
            Err("the stream decodes to nothing".to_string())
        }
        Ok(_) => Ok(()),
        // A filter lopdf does not implement is no proof of damage; the fax service's
        // reader may know it.
        Err(lopdf::Error::Unimplemented(_)) => {
            warn!(?filters, "PDF content stream uses a filter that cannot be checked");
            Ok(())
        }
        Err(error) => Err(error.to_string()),
    }
}

/// Inflates zlib data to the end of its final block, reading at most `max_bytes`.
fn check_zlib(data: &[u8], max_bytes: usize) -> Result<(), String> {
    let [method, flags, deflate @ ..] = data else {
        return Err("the zlib header is missing".to_string());
    };
    let header_valid = method & 0x0F == 8 && (u16::from(*method) << 8 | u16::from(*flags)) % 31 == 0;
    if !header_valid {
        return Err("the zlib header is invalid".to_string());
    }
    let limit = u64::try_from(max_bytes).unwrap_or(u64::MAX);
    let mut decoder = flate2::read::DeflateDecoder::new(deflate).take(limit.saturating_add(1));
    let decoded = std::io::copy(&mut decoder, &mut std::io::sink()).map_err(|error| error.to_string())?;
    if decoded > limit {
        return Err(format!("the stream decodes to more than {max_bytes} bytes"));
    }
    Ok(())
}
