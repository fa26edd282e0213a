//! Flattening of filled-in form fields: the appearance stream of each printable widget
//! annotation is drawn into its page's content, and the widgets are removed. A fax is a
//! print of the document, so this keeps the values a sender typed into a form whatever
//! the fax service's renderer does with annotations.
//!
//! A page that is fitted to the paper gets all its other annotations flattened the same
//! way by [`flatten_annotations`], because their rectangles would not follow the page.

use lopdf::{Dictionary, Document, Object, ObjectId, Stream};
use tracing::{debug, warn};

/// Annotation flag `Hidden` (PDF 32000-1:2008, table 165).
const FLAG_HIDDEN: i64 = 1 << 1;
/// Annotation flag `Print`: only annotations with it appear on paper.
const FLAG_PRINT: i64 = 1 << 2;

/// Prefix of the resource names given to the drawn appearances.
const XOBJECT_PREFIX: &str = "FaxgateFlat";

/// Flattens the widget annotations of `pages`. Widgets without an appearance stream are
/// removed without a drawing.
pub(crate) fn flatten_forms(document: &mut Document, pages: &[ObjectId]) {
    let default_resources = document
        .catalog()
        .and_then(|catalog| catalog.get_deref(b"AcroForm", document))
        .and_then(Object::as_dict)
        .and_then(|form| form.get(b"DR"))
        .ok()
        .cloned();
    if let Ok(catalog) = document.catalog()
        && catalog.has(b"AcroForm")
        && form_needs_appearances(document)
    {
        // TODO: generate appearances from field values; until then a viewer that
        // regenerates them may show values that the fax leaves out.
        warn!("PDF form asks viewers to regenerate its field appearances; faxing the stored ones");
    }

    for &page_id in pages {
        flatten_page(document, page_id, default_resources.as_ref(), Scope::Widgets);
    }
}

/// Draws every printable annotation of the page that has an appearance stream into its
/// content and removes `/Annots`. Links and pop-up notes are removed without a drawing,
/// because they do nothing on paper.
pub(crate) fn flatten_annotations(document: &mut Document, page_id: ObjectId) {
    flatten_page(document, page_id, None, Scope::All);
    // An `/Annots` that is empty or not an array is left by `flatten_page`.
    if let Ok(page) = document.get_dictionary_mut(page_id) {
        page.remove(b"Annots");
    }
}

/// The annotations that [`flatten_page`] draws and removes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Scope {
    /// Form field widgets only; other annotations stay.
    Widgets,
    /// Every annotation.
    All,
}

fn form_needs_appearances(document: &Document) -> bool {
    document
        .catalog()
        .and_then(|catalog| catalog.get_deref(b"AcroForm", document))
        .and_then(Object::as_dict)
        .and_then(|form| form.get_deref(b"NeedAppearances", document))
        .and_then(Object::as_bool)
        .unwrap_or(false)
}

/// An annotation appearance to draw: the form XObject and the matrix that maps it onto the
/// annotation's rectangle.
struct Drawing {
    xobject: ObjectId,
    matrix: [f32; 6],
}

fn flatten_page(document: &mut Document, page_id: ObjectId, default_resources: Option<&Object>, scope: Scope) {
    let Ok(page) = document.get_dictionary(page_id) else {
        return;
    };
    let Ok(annotations) = page.get_deref(b"Annots", document).and_then(Object::as_array) else {
        return;
    };

    let mut remaining = Vec::new();
    let mut drawings = Vec::new();
    for annotation in annotations {
        let Ok((_, Object::Dictionary(dictionary))) = document.dereference(annotation) else {
            if scope == Scope::Widgets {
                remaining.push(annotation.clone());
            }
            continue;
        };
        let subtype = dictionary.get(b"Subtype").and_then(Object::as_name).ok();
        if scope == Scope::Widgets && subtype != Some(b"Widget".as_slice()) {
            remaining.push(annotation.clone());
            continue;
        }
        if matches!(subtype, Some(b"Link" | b"Popup")) {
            continue;
        }
        if let Some(drawing) = appearance_drawing(document, dictionary) {
            drawings.push(drawing);
        }
    }
    if remaining.len() == annotations.len() {
        return;
    }
    debug!(?page_id, removed = annotations.len() - remaining.len(), drawn = drawings.len(), "flattening annotations");
    if drawings.is_empty() {
        if let Ok(page) = document.get_dictionary_mut(page_id) {
            set_annotations(page, remaining);
        }
        return;
    }

    for drawing in &drawings {
        prepare_xobject(document, drawing.xobject, default_resources);
    }
    let resources = page_resources_with(document, page_id, &drawings);
    let operators: String = drawings
        .iter()
        .map(|drawing| {
            let [a, b, c, d, e, f] = drawing.matrix;
            format!("q {a} {b} {c} {d} {e} {f} cm /{XOBJECT_PREFIX}{} Do Q\n", drawing.xobject.0)
        })
        .collect();
    let contents = wrapped_contents(document, page_id, operators);

    if let Ok(page) = document.get_dictionary_mut(page_id) {
        page.set("Resources", resources);
        page.set("Contents", contents);
        set_annotations(page, remaining);
    }
}

fn set_annotations(page: &mut Dictionary, remaining: Vec<Object>) {
    if remaining.is_empty() {
        page.remove(b"Annots");
    } else {
        page.set("Annots", remaining);
    }
}

/// Returns the appearance to draw for a printable, visible annotation with a normal
/// appearance stream, or `None` when nothing is drawn.
fn appearance_drawing(document: &Document, annotation: &Dictionary) -> Option<Drawing> {
    let flags = annotation.get_deref(b"F", document).and_then(Object::as_i64).unwrap_or(0);
    if flags & FLAG_HIDDEN != 0 || flags & FLAG_PRINT == 0 {
        return None;
    }

    let normal = annotation
        .get_deref(b"AP", document)
        .and_then(Object::as_dict)
        .and_then(|appearances| appearances.get(b"N"))
        .ok()?;
    // A check box or radio button has one appearance per state, chosen by /AS.
    let xobject = match document.dereference(normal).ok()? {
        (Some(id), Object::Stream(_)) => id,
        (_, Object::Dictionary(states)) => {
            let state = annotation.get(b"AS").and_then(Object::as_name).ok()?;
            match states.get(state).ok()? {
                Object::Reference(id) if matches!(document.get_object(*id), Ok(Object::Stream(_))) => *id,
                _ => return None,
            }
        }
        _ => return None,
    };
    let Ok(Object::Stream(stream)) = document.get_object(xobject) else {
        return None;
    };

    let rectangle = normalized(&numbers(document, annotation.get(b"Rect").ok()?)?)?;
    let bounding_box = numbers(document, stream.dict.get(b"BBox").ok()?)?;
    let form_matrix = stream
        .dict
        .get(b"Matrix")
        .ok()
        .and_then(|matrix| numbers(document, matrix))
        .filter(|values| values.len() == 6)
        .unwrap_or_else(|| vec![1.0, 0.0, 0.0, 1.0, 0.0, 0.0]);
    let transformed = transformed_box(&bounding_box, &form_matrix)?;

    // Maps the transformed bounding box onto the rectangle, as PDF viewers do when
    // they draw an annotation's appearance.
    let width = transformed[2] - transformed[0];
    let height = transformed[3] - transformed[1];
    if width.abs() < f32::EPSILON || height.abs() < f32::EPSILON {
        return None;
    }
    let scale_x = (rectangle[2] - rectangle[0]) / width;
    let scale_y = (rectangle[3] - rectangle[1]) / height;
    let matrix = [
        scale_x,
        0.0,
        0.0,
        scale_y,
        rectangle[0] - transformed[0] * scale_x,
        rectangle[1] - transformed[1] * scale_y,
    ];
    Some(Drawing { xobject, matrix })
}

fn numbers(document: &Document, object: &Object) -> Option<Vec<f32>> {
    let (_, object) = document.dereference(object).ok()?;
    object
        .as_array()
        .ok()?
        .iter()
        .map(|item| document.dereference(item).ok().and_then(|(_, value)| value.as_float().ok()))
        .collect()
}

fn normalized(rectangle: &[f32]) -> Option<[f32; 4]> {
    let [x1, y1, x2, y2] = <[f32; 4]>::try_from(rectangle).ok()?;
    Some([x1.min(x2), y1.min(y2), x1.max(x2), y1.max(y2)])
}

/// Returns the bounding box of `bounding_box` transformed by `matrix`.
fn transformed_box(bounding_box: &[f32], matrix: &[f32]) -> Option<[f32; 4]> {
    let [x1, y1, x2, y2] = normalized(bounding_box)?;
    let [a, b, c, d, e, f] = <[f32; 6]>::try_from(matrix).ok()?;
    let corners = [(x1, y1), (x1, y2), (x2, y1), (x2, y2)].map(|(x, y)| (a * x + c * y + e, b * x + d * y + f));
    let xs = corners.map(|(x, _)| x);
    let ys = corners.map(|(_, y)| y);
    let min = |values: [f32; 4]| values.into_iter().fold(f32::INFINITY, f32::min);
    let max = |values: [f32; 4]| values.into_iter().fold(f32::NEG_INFINITY, f32::max);
    Some([min(xs), min(ys), max(xs), max(ys)])
}

/// Makes the appearance stream a complete form XObject. One without resources gets the
/// form's default resources, where its fonts are defined.
fn prepare_xobject(document: &mut Document, xobject: ObjectId, default_resources: Option<&Object>) {
    let Ok(Object::Stream(stream)) = document.get_object_mut(xobject) else {
        return;
    };
    stream.dict.set("Type", Object::Name(b"XObject".to_vec()));
    stream.dict.set("Subtype", Object::Name(b"Form".to_vec()));
    if !stream.dict.has(b"Resources")
        && let Some(resources) = default_resources
    {
        stream.dict.set("Resources", resources.clone());
    }
}

/// Returns a copy of the page's resources with the appearances added to `/XObject`. The
/// copy keeps resource dictionaries that other pages share unchanged.
fn page_resources_with(document: &Document, page_id: ObjectId, drawings: &[Drawing]) -> Dictionary {
    let mut resources = document
        .get_dictionary(page_id)
        .and_then(|page| page.get_deref(b"Resources", document))
        .and_then(Object::as_dict)
        .cloned()
        .unwrap_or_default();
    let mut xobjects = resources
        .get_deref(b"XObject", document)
        .and_then(Object::as_dict)
        .cloned()
        .unwrap_or_default();
    for drawing in drawings {
        xobjects.set(format!("{XOBJECT_PREFIX}{}", drawing.xobject.0), drawing.xobject);
    }
    resources.set("XObject", xobjects);
    resources
}

/// Returns the entries of the page's `/Contents`: a single stream, or each stream of an
/// array, which may itself be given by reference.
pub(crate) fn content_streams(document: &Document, page_id: ObjectId) -> Vec<Object> {
    match document.get_dictionary(page_id).and_then(|page| page.get(b"Contents")) {
        Ok(Object::Array(items)) => items.clone(),
        Ok(Object::Reference(id)) => match document.get_object(*id) {
            Ok(Object::Array(items)) => items.clone(),
            _ => vec![Object::Reference(*id)],
        },
        _ => Vec::new(),
    }
}

/// Returns the page's content streams enclosed in `q` ... `Q`, so the page's own
/// graphics state cannot shift the drawings, followed by `operators`.
fn wrapped_contents(document: &mut Document, page_id: ObjectId, operators: String) -> Vec<Object> {
    let existing = content_streams(document, page_id);
    let opening = document.add_object(Stream::new(Dictionary::new(), b"q\n".to_vec()));
    let closing = document.add_object(Stream::new(Dictionary::new(), format!("\nQ\n{operators}").into_bytes()));

    let mut contents = Vec::with_capacity(existing.len() + 2);
    contents.push(Object::Reference(opening));
    contents.extend(existing);
    contents.push(Object::Reference(closing));
    contents
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn box_mapped_onto_rectangle() {
        let transformed = transformed_box(&[0.0, 0.0, 100.0, 20.0], &[1.0, 0.0, 0.0, 1.0, 0.0, 0.0]).unwrap();
        assert_eq!(transformed, [0.0, 0.0, 100.0, 20.0]);

        // A 90-degree rotation swaps width and height.
        let rotated = transformed_box(&[0.0, 0.0, 100.0, 20.0], &[0.0, 1.0, -1.0, 0.0, 0.0, 0.0]).unwrap();
        assert_eq!(rotated, [-20.0, 0.0, 0.0, 100.0]);
    }

    #[test]
    fn rectangle_corners_normalized() {
        assert_eq!(normalized(&[200.0, 120.0, 100.0, 100.0]).unwrap(), [100.0, 100.0, 200.0, 120.0]);
        assert!(normalized(&[1.0, 2.0, 3.0]).is_none());
    }
}
