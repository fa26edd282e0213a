//! Merging loaded documents into one PDF: the pages of each document in order under one
//! new page tree, with the objects they reach moved over and renumbered.
//!
//! Only objects reachable from the pages are copied, so catalogs, outlines,
//! linearization dictionaries, cross-reference and object streams and the `/Encrypt`
//! dictionary of the inputs stay behind, and the output is written unencrypted with
//! classic cross-reference tables.

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use lopdf::xref::XrefType;
use lopdf::{Dictionary, Document, Object, ObjectId};

use super::pdf::PdfPages;

/// Object number of the page tree root in the output.
const PAGES_ID: ObjectId = (1, 0);
/// Object number of the catalog in the output.
const CATALOG_ID: ObjectId = (2, 0);
/// Version written when no input states a higher one.
const MIN_VERSION: &str = "1.4";

/// A merged PDF and its page count.
pub(crate) struct Merged {
    pub(crate) pdf: Vec<u8>,
    pub(crate) pages: u32,
}

/// Merges the documents in order into one PDF. The inputs are consumed: their objects
/// move into the output without copies.
pub(crate) fn merge(documents: Vec<PdfPages>) -> Result<Merged, lopdf::Error> {
    let version = output_version(&documents);
    let mut output = Document::with_version(version);
    // A classic cross-reference table, because cross-reference streams (lopdf's
    // default) need a reader of PDF 1.5 or later.
    output.reference_table.cross_reference_type = XrefType::CrossReferenceTable;
    let mut kids = Vec::new();
    let mut next_number = CATALOG_ID.0 + 1;

    for PdfPages { mut document, pages } in documents {
        let renumbered = renumber_reachable(&document, &pages, &mut next_number);
        for (old_id, new_id) in &renumbered {
            let Some(mut object) = document.objects.remove(old_id) else {
                continue;
            };
            rewrite_references(&mut object, &renumbered);
            output.objects.insert(*new_id, object);
        }
        for page in &pages {
            let new_id = renumbered[page];
            if let Some(Object::Dictionary(dictionary)) = output.objects.get_mut(&new_id) {
                dictionary.set("Parent", PAGES_ID);
            }
            kids.push(Object::Reference(new_id));
        }
    }

    let page_count = kids.len() as u32;
    let mut page_tree = Dictionary::new();
    page_tree.set("Type", Object::Name(b"Pages".to_vec()));
    page_tree.set("Count", i64::from(page_count));
    page_tree.set("Kids", kids);
    output.objects.insert(PAGES_ID, Object::Dictionary(page_tree));

    let mut catalog = Dictionary::new();
    catalog.set("Type", Object::Name(b"Catalog".to_vec()));
    catalog.set("Pages", PAGES_ID);
    output.objects.insert(CATALOG_ID, Object::Dictionary(catalog));
    output.trailer.set("Root", CATALOG_ID);
    output.max_id = next_number - 1;

    // Stream data is nearly all of a fax PDF's bytes, so reserving it up front spares
    // the output buffer the copies of growing to several MB.
    let stream_bytes: usize = output
        .objects
        .values()
        .map(|object| match object {
            Object::Stream(stream) => stream.content.len() + 128,
            _ => 64,
        })
        .sum();
    let mut pdf = Vec::with_capacity(stream_bytes + 4096);
    output.save_to(&mut pdf)?;
    Ok(Merged { pdf, pages: page_count })
}

/// The highest PDF version among the inputs, at least [`MIN_VERSION`], so features an
/// input relies on stay declared.
fn output_version(documents: &[PdfPages]) -> String {
    let parse = |version: &str| -> Option<(u32, u32)> {
        let (major, minor) = version.trim().split_once('.')?;
        Some((major.parse().ok()?, minor.parse().ok()?))
    };
    let highest = documents
        .iter()
        .filter_map(|pdf| parse(&pdf.document.version))
        .filter(|&(major, _)| major <= 2)
        .max()
        .unwrap_or((1, 4));
    let minimum = parse(MIN_VERSION).unwrap_or((1, 4));
    let (major, minor) = highest.max(minimum);
    format!("{major}.{minor}")
}

/// Finds every object reachable from `pages` and assigns it a new number from
/// `next_number` on, in the order found. Pages carry no `/Parent` at this point, so the
/// walk does not climb into the input's page tree and catalog.
fn renumber_reachable(
    document: &Document,
    pages: &[ObjectId],
    next_number: &mut u32,
) -> HashMap<ObjectId, ObjectId> {
    let mut renumbered = HashMap::new();
    let mut pending: Vec<ObjectId> = Vec::new();
    for &page in pages {
        if let Entry::Vacant(entry) = renumbered.entry(page) {
            entry.insert(take_number(next_number));
            pending.push(page);
        }
    }

    let mut found = Vec::new();
    while let Some(id) = pending.pop() {
        let Some(object) = document.objects.get(&id) else {
            continue;
        };
        found.clear();
        collect_references(object, &mut found);
        for &reference in &found {
            if document.objects.contains_key(&reference) && !renumbered.contains_key(&reference) {
                renumbered.insert(reference, take_number(next_number));
                pending.push(reference);
            }
        }
    }
    renumbered
}

fn take_number(next_number: &mut u32) -> ObjectId {
    let id = (*next_number, 0);
    *next_number += 1;
    id
}

/// Appends the references inside `object` to `found`. Direct objects nest at most as
/// deep as lopdf's parser allows (100 levels), so the recursion is bounded.
fn collect_references(object: &Object, found: &mut Vec<ObjectId>) {
    match object {
        Object::Reference(id) => found.push(*id),
        Object::Array(items) => items.iter().for_each(|item| collect_references(item, found)),
        Object::Dictionary(dictionary) => dictionary.iter().for_each(|(_, value)| collect_references(value, found)),
        Object::Stream(stream) => stream.dict.iter().for_each(|(_, value)| collect_references(value, found)),
        _ => {}
    }
}

/// Points the references inside `object` at the new numbers. A reference to an object
/// that does not exist becomes null, which is what a PDF reader makes of it.
fn rewrite_references(object: &mut Object, renumbered: &HashMap<ObjectId, ObjectId>) {
    match object {
        Object::Reference(id) => match renumbered.get(id) {
            Some(new_id) => *id = *new_id,
            None => *object = Object::Null,
        },
        Object::Array(items) => items.iter_mut().for_each(|item| rewrite_references(item, renumbered)),
        Object::Dictionary(dictionary) => {
            dictionary.iter_mut().for_each(|(_, value)| rewrite_references(value, renumbered))
        }
        Object::Stream(stream) => stream.dict.iter_mut().for_each(|(_, value)| rewrite_references(value, renumbered)),
        _ => {}
    }
}
