//! The HTML page listing a directory (`listing = true`): names escaped for HTML, links
//! percent-encoded, directories first, hidden names left out unless `hidden = true`.

use std::path::Path;

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

fn href(name: &str) -> String {
    percent_encoding::utf8_percent_encode(name, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// The listing of `dir`, shown as `shown` (the request path, ending in `/`).
pub async fn page(dir: &Path, shown: &str, hidden: bool) -> std::io::Result<String> {
    let mut entries = Vec::new();
    let mut rd = tokio::fs::read_dir(dir).await?;
    while let Some(e) = rd.next_entry().await? {
        let name = e.file_name().to_string_lossy().into_owned();
        if !hidden && name.starts_with('.') {
            continue;
        }
        let is_dir = e.file_type().await.map(|t| t.is_dir()).unwrap_or(false);
        entries.push((!is_dir, name));
    }
    entries.sort();
    let title = escape(shown);
    let mut out = format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Index of {title}</title></head>\n<body><h1>Index of {title}</h1>\n<ul>\n<li><a href=\"../\">../</a></li>\n"
    );
    for (file, name) in entries {
        let slash = if file { "" } else { "/" };
        out.push_str(&format!(
            "<li><a href=\"{}{slash}\">{}{slash}</a></li>\n",
            href(&name),
            escape(&name)
        ));
    }
    out.push_str("</ul></body></html>\n");
    Ok(out)
}
