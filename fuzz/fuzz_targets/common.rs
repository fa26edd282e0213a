//! Limits shared by the fuzz targets: the defaults, with the Office converter pointed
//! at a path that does not exist so no input starts LibreOffice.

use faxgate::documents::Limits;

pub fn limits() -> Limits {
    Limits { office_converter: "/nonexistent/soffice".to_string(), ..Limits::default() }
}
