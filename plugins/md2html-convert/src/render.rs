//! Markdown to HTML, with no I/O, so that the plugin and a native benchmark run the
//! very same code: CommonMark plus tables, footnotes, strikethrough and task lists
//! (pulldown-cmark); headings get `id`s, and a heading holding an `<a id="X">` anchor
//! (Door43's section headers) gets `id="X"` and `class="section-header"` instead; links
//! to other files of the repository follow the site's [`Links`]; a leading `---`
//! metadata block is not rendered (its `title:` names the page). Pages are wrapped in a
//! [`Template`]: `{{ title }}` placeholders, or tx-manager's `$title`.

use pulldown_cmark::{CowStr, Event, HeadingLevel, MetadataBlockKind, Options, Parser, Tag, TagEnd};
use std::borrow::Cow;
use std::collections::HashMap;

/// The default page layout. `{{ title }}` and `{{ content }}` are filled in; so are
/// `{{ root }}` (the relative path to the site's root: empty, or ending in `/`), `{{ path }}`,
/// `{{ repo }}` and `{{ commit }}`.
pub const DEFAULT_LAYOUT: &str = r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ title }}</title>
<style>
body { font-family: system-ui, sans-serif; max-width: 50rem; margin: 2rem auto; padding: 0 1rem; line-height: 1.5; }
table { border-collapse: collapse; } th, td { border: 1px solid #ccc; padding: .25rem .5rem; }
pre { background: #f6f8fa; padding: .75rem; overflow: auto; } img { max-width: 100%; }
nav { font-size: .9rem; margin-bottom: 1rem; }
</style>
</head>
<body>
<nav><a href="{{ root }}index.html">{{ repo }}</a> · {{ commit }}</nav>
<div id="content">
{{ content }}
</div>
</body>
</html>
"#;

/// One rendered page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// The page's title: the metadata block's `title:`, else the first heading, else the file name.
    pub title: String,
    /// The HTML of the body (without the layout).
    pub body: String,
}

/// Where links to other files of the repository point, which depends on where the
/// site's files are written.
#[derive(Debug, Clone, Copy, Default)]
pub enum Links<'a> {
    /// Every file keeps its folder: a relative link to a `.md` file points at its
    /// `.html` (`part/two.md#setup` → `part/two.html#setup`); other links stay.
    #[default]
    Nested,
    /// The site path of every file the site holds, by repository path (`exo/01/01.md` →
    /// `01.html`, `media/map.png` → `map.png`), with every page in the site's root: a
    /// relative link or image naming one of these files points at its site path; other
    /// links (to files left out, or outside the repository) stay as written.
    Flat(&'a HashMap<String, String>),
}

/// Renders one Markdown document whose path (for the fallback title) is `path`, with
/// links to `.md` files pointing at their `.html` next to them ([`Links::Nested`]).
pub fn markdown(text: &str, path: &str) -> Page {
    markdown_with(text, path, Links::Nested)
}

/// Renders one Markdown document of the repository (at `path`) for a site whose files
/// are placed as `links` says.
pub fn markdown_with(text: &str, path: &str, links: Links<'_>) -> Page {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let options = Options::ENABLE_TABLES
        | Options::ENABLE_FOOTNOTES
        | Options::ENABLE_STRIKETHROUGH
        | Options::ENABLE_TASKLISTS
        | Options::ENABLE_YAML_STYLE_METADATA_BLOCKS;
    let mut title = None;
    let mut first_heading = None;
    let mut used: HashMap<String, usize> = HashMap::new();
    let mut in_metadata = false;
    // Events stream to the HTML writer; only a heading's are held back until its text
    // (and so its id) is known, then let out from `ready`.
    let mut parser = Parser::new_ext(text, options);
    let mut heading: Vec<Event<'_>> = Vec::new();
    let mut ready: std::collections::VecDeque<Event<'_>> = std::collections::VecDeque::new();
    let events = std::iter::from_fn(|| {
        loop {
            if let Some(event) = ready.pop_front() {
                return Some(event);
            }
            let event = parser.next()?;
            let event = match event {
                Event::Start(Tag::MetadataBlock(MetadataBlockKind::YamlStyle)) => {
                    in_metadata = true;
                    continue;
                }
                Event::End(TagEnd::MetadataBlock(_)) => {
                    in_metadata = false;
                    continue;
                }
                Event::Text(text) if in_metadata => {
                    title = title.take().or_else(|| metadata_title(&text));
                    continue;
                }
                _ if in_metadata => continue,
                Event::Start(Tag::Heading { .. }) => {
                    heading.push(event);
                    continue;
                }
                Event::End(TagEnd::Heading(_)) => {
                    heading.push(event);
                    let anchor = take_anchor(&mut heading);
                    let text = plain_text(&heading[1..]);
                    if let Some(Event::Start(Tag::Heading { level, id, classes, .. })) = heading.first_mut() {
                        if first_heading.is_none() && !text.is_empty() && *level <= HeadingLevel::H2 {
                            first_heading = Some(text.clone());
                        }
                        match anchor {
                            Some(anchor) => {
                                *used.entry(anchor.clone()).or_insert(0) += 1;
                                *id = Some(CowStr::from(anchor));
                                classes.push(CowStr::Borrowed("section-header"));
                            }
                            None if id.is_none() => *id = Some(CowStr::from(unique(&mut used, slug(&text)))),
                            None => {}
                        }
                    }
                    ready.extend(heading.drain(..));
                    continue;
                }
                Event::Start(Tag::Link { link_type, dest_url, title: link_title, id }) => {
                    Event::Start(Tag::Link { link_type, dest_url: link(dest_url, path, links), title: link_title, id })
                }
                Event::Start(Tag::Image { link_type, dest_url, title: image_title, id })
                    if let Links::Flat(site) = links =>
                {
                    Event::Start(Tag::Image {
                        link_type,
                        dest_url: flat_link(dest_url, path, site),
                        title: image_title,
                        id,
                    })
                }
                other => other,
            };
            if heading.is_empty() {
                return Some(event);
            }
            heading.push(event);
        }
    });
    let mut body = String::with_capacity(text.len() * 3 / 2);
    pulldown_cmark::html::push_html(&mut body, events);
    let fallback = || {
        let name = path.rsplit('/').next().unwrap_or(path);
        name.strip_suffix(".md").unwrap_or(name).to_owned()
    };
    Page { title: title.or(first_heading).unwrap_or_else(fallback), body }
}

/// Takes a section anchor out of a heading's events (`Start(Heading)`, its content,
/// `End(Heading)`) and returns its id: the first inline `<a id="X">` without an `href`
/// (written `<a id="X"/>`, or `<a id="X"></a>`, or around text, which stays). A space
/// the anchor leaves at the start or end of the heading goes with it.
fn take_anchor(heading: &mut Vec<Event<'_>>) -> Option<String> {
    let end = heading.len() - 1;
    let (at, id, open) = heading[1..end].iter().enumerate().find_map(|(i, event)| match event {
        Event::InlineHtml(html) => anchor_id(html).map(|(id, open)| (i + 1, id, open)),
        _ => None,
    })?;
    heading.remove(at);
    if open
        && let Some(close) =
            heading[at..end - 1].iter().position(|e| matches!(e, Event::InlineHtml(html) if is_anchor_close(html)))
    {
        heading.remove(at + close);
    }
    if at == 1
        && let Some(Event::Text(text)) = heading.get_mut(1)
        && text.starts_with(char::is_whitespace)
    {
        *text = CowStr::from(text.trim_start().to_owned());
    }
    let last = heading.len() - 2;
    if at > last
        && let Some(Event::Text(text)) = heading.get_mut(last)
        && text.ends_with(char::is_whitespace)
    {
        *text = CowStr::from(text.trim_end().to_owned());
    }
    Some(id)
}

/// The `id` of an opening `<a …>` tag that has no `href`, and whether the tag stays
/// open (`<a id="x">`, not `<a id="x"/>`).
fn anchor_id(html: &str) -> Option<(String, bool)> {
    let rest = html.strip_prefix('<')?;
    let name_end = rest.find(|c: char| c.is_ascii_whitespace() || c == '/' || c == '>')?;
    if !rest[..name_end].eq_ignore_ascii_case("a") {
        return None;
    }
    let mut rest = &rest[name_end..];
    let mut id = None;
    let open = loop {
        rest = rest.trim_start();
        if rest.starts_with("/>") {
            break false;
        }
        if rest.starts_with('>') {
            break true;
        }
        let name_end = rest.find(|c: char| c.is_ascii_whitespace() || matches!(c, '=' | '>' | '/'))?;
        if name_end == 0 {
            // A stray `/` inside the tag.
            rest = &rest[1..];
            continue;
        }
        let name = &rest[..name_end];
        rest = rest[name_end..].trim_start();
        let mut value = "";
        if let Some(after) = rest.strip_prefix('=') {
            let after = after.trim_start();
            let (found, next) = match after.chars().next()? {
                quote @ ('"' | '\'') => {
                    let close = after[1..].find(quote)? + 1;
                    (&after[1..close], &after[close + 1..])
                }
                _ => {
                    let end = after.find(|c: char| c.is_ascii_whitespace() || c == '>').unwrap_or(after.len());
                    (&after[..end], &after[end..])
                }
            };
            value = found;
            rest = next;
        }
        if name.eq_ignore_ascii_case("href") {
            return None;
        }
        if name.eq_ignore_ascii_case("id") && id.is_none() && !value.is_empty() {
            id = Some(unescape(value));
        }
    };
    Some((id?, open))
}

fn is_anchor_close(html: &str) -> bool {
    html.strip_prefix("</")
        .and_then(|rest| rest.strip_suffix('>'))
        .is_some_and(|name| name.trim_end().eq_ignore_ascii_case("a"))
}

/// Undoes the escapes an attribute value may hold (the heading's `id` is escaped again
/// when written).
fn unescape(value: &str) -> String {
    if !value.contains('&') {
        return value.to_owned();
    }
    value.replace("&quot;", "\"").replace("&#39;", "'").replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
}

/// The page in the layout, its placeholders filled as [`Template`] says; `{{ root }}`
/// goes up from `path` (the page's path in the site, or in the repository when the site
/// keeps its folders).
pub fn wrap(layout: &str, page: &Page, path: &str, repo: &str, commit: &str) -> String {
    let root = "../".repeat(path.matches('/').count());
    Template::parse(layout).fill(page, &Fields { root: &root, path, repo, commit })
}

/// A page layout, parsed once and filled for every page. Two styles of placeholder,
/// told apart by the layout itself:
/// - `{{ title }}`, `{{ content }}`, `{{ root }}`, `{{ path }}`, `{{ repo }}` and
///   `{{ commit }}`, when the layout holds at least one of these (gitauto's style);
///   `$` is then plain text;
/// - otherwise tx-manager's Python `string.Template`: `$title` or `${title}` (and the
///   same names), `$$` for a `$`; an unknown `$name`, or a `$` before anything else,
///   stays as written.
///
/// The title, path, repository and commit are escaped; the content is HTML already.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template<'a> {
    pieces: Vec<Piece<'a>>,
    /// The length of the text pieces, to size each page once.
    text_len: usize,
}

/// A stretch of a layout: text as it is, or a placeholder.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece<'a> {
    Text(Cow<'a, str>),
    Field(Field),
}

/// What a placeholder stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Title,
    Content,
    Root,
    Path,
    Repo,
    Commit,
}

impl Field {
    fn named(name: &str) -> Option<Self> {
        Some(match name {
            "title" => Self::Title,
            "content" => Self::Content,
            "root" => Self::Root,
            "path" => Self::Path,
            "repo" => Self::Repo,
            "commit" => Self::Commit,
            _ => return None,
        })
    }
}

/// What a layout's placeholders other than the title and content are filled with.
#[derive(Debug, Clone, Copy)]
pub struct Fields<'a> {
    /// The relative path from the page to the site's root: empty or ending in `/`.
    pub root: &'a str,
    /// The page's source path in the repository.
    pub path: &'a str,
    /// The repository's name (`owner/name`).
    pub repo: &'a str,
    /// The commit, as the site names it.
    pub commit: &'a str,
}

impl<'a> Template<'a> {
    /// Parses `layout`, deciding its style (see [`Template`]).
    pub fn parse(layout: &'a str) -> Self {
        let mut pieces = Self::braces(layout);
        if !pieces.iter().any(|piece| matches!(piece, Piece::Field(_))) {
            pieces = Self::dollars(layout);
        }
        let text_len = pieces.iter().map(|piece| if let Piece::Text(text) = piece { text.len() } else { 0 }).sum();
        Self { pieces, text_len }
    }

    /// `{{ name }}` placeholders; an unknown one stays, without its inner spaces.
    fn braces(layout: &'a str) -> Vec<Piece<'a>> {
        let mut pieces = Vec::new();
        let mut rest = layout;
        while let Some(open) = rest.find("{{") {
            let Some(close) = rest[open..].find("}}").map(|c| open + c) else { break };
            pieces.push(Piece::Text(Cow::Borrowed(&rest[..open])));
            let name = rest[open + 2..close].trim();
            pieces.push(match Field::named(name) {
                Some(field) => Piece::Field(field),
                None => Piece::Text(Cow::Owned(format!("{{{{{name}}}}}"))),
            });
            rest = &rest[close + 2..];
        }
        pieces.push(Piece::Text(Cow::Borrowed(rest)));
        pieces
    }

    /// Python's `string.Template` with `safe_substitute`: `$$`, `$name`, `${name}`, where
    /// a name is an ASCII letter or `_` followed by letters, digits and `_`.
    fn dollars(layout: &'a str) -> Vec<Piece<'a>> {
        let mut pieces = Vec::new();
        let mut rest = layout;
        while let Some(at) = rest.find('$') {
            pieces.push(Piece::Text(Cow::Borrowed(&rest[..at])));
            let after = &rest[at + 1..];
            let (piece, used) = if after.starts_with('$') {
                (Piece::Text(Cow::Borrowed("$")), 1)
            } else if let Some(braced) = after.strip_prefix('{') {
                match identifier(braced) {
                    Some(name) if braced[name.len()..].starts_with('}') => {
                        let used = name.len() + 2;
                        let piece = Field::named(name)
                            .map_or_else(|| Piece::Text(Cow::Borrowed(&rest[at..at + 1 + used])), Piece::Field);
                        (piece, used)
                    }
                    _ => (Piece::Text(Cow::Borrowed("$")), 0),
                }
            } else {
                match identifier(after) {
                    Some(name) => {
                        let piece = Field::named(name)
                            .map_or_else(|| Piece::Text(Cow::Borrowed(&rest[at..at + 1 + name.len()])), Piece::Field);
                        (piece, name.len())
                    }
                    None => (Piece::Text(Cow::Borrowed("$")), 0),
                }
            };
            pieces.push(piece);
            rest = &after[used..];
        }
        pieces.push(Piece::Text(Cow::Borrowed(rest)));
        pieces
    }

    /// The page in this layout.
    pub fn fill(&self, page: &Page, fields: &Fields<'_>) -> String {
        let mut html = String::with_capacity(self.text_len + page.body.len() + 256);
        for piece in &self.pieces {
            match piece {
                Piece::Text(text) => html.push_str(text),
                Piece::Field(Field::Title) => push_escaped(&mut html, &page.title),
                Piece::Field(Field::Content) => html.push_str(&page.body),
                Piece::Field(Field::Root) => html.push_str(fields.root),
                Piece::Field(Field::Path) => push_escaped(&mut html, fields.path),
                Piece::Field(Field::Repo) => push_escaped(&mut html, fields.repo),
                Piece::Field(Field::Commit) => push_escaped(&mut html, fields.commit),
            }
        }
        html
    }
}

/// The name at the start of `text`, as Python's `string.Template` reads one.
fn identifier(text: &str) -> Option<&str> {
    let first = text.chars().next()?;
    if !(first.is_ascii_alphabetic() || first == '_') {
        return None;
    }
    let end = text.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(text.len());
    Some(&text[..end])
}

/// An index page linking every converted page, in path order.
pub fn index(pages: &[(String, String)], repo: &str) -> Page {
    let mut body = format!("<h1>{}</h1>\n<ul>\n", escape(repo));
    for (path, title) in pages {
        body.push_str(&format!(
            "<li><a href=\"{}\">{}</a> <small>{}</small></li>\n",
            escape(path),
            escape(title),
            escape(path)
        ));
    }
    body.push_str("</ul>\n");
    Page { title: repo.to_owned(), body }
}

/// `docs/guide.md` → `docs/guide.html`.
pub fn html_path(md_path: &str) -> String {
    format!("{}.html", md_path.strip_suffix(".md").unwrap_or(md_path))
}

/// Where a link from the page at `from` points in the site.
fn link<'a>(dest: CowStr<'a>, from: &str, links: Links<'_>) -> CowStr<'a> {
    match links {
        Links::Nested => rewrite_link(dest),
        Links::Flat(site) => flat_link(dest, from, site),
    }
}

/// A relative link to a `.md` file goes to its `.html`; others stay.
fn rewrite_link(dest: CowStr<'_>) -> CowStr<'_> {
    let external =
        dest.contains("://") || dest.starts_with('/') || dest.starts_with('#') || dest.starts_with("mailto:");
    let (target, fragment) = match dest.split_once('#') {
        Some((target, fragment)) => (target, Some(fragment)),
        None => (&*dest, None),
    };
    let rewritten = match (external, target.strip_suffix(".md")) {
        (false, Some(stem)) => match fragment {
            Some(fragment) => format!("{stem}.html#{fragment}"),
            None => format!("{stem}.html"),
        },
        _ => return dest,
    };
    CowStr::from(rewritten)
}

/// A relative link from the page at `from` (a repository path) to a file the flat site
/// holds goes to that file's site path, keeping its query and fragment; others stay.
fn flat_link<'a>(dest: CowStr<'a>, from: &str, site: &HashMap<String, String>) -> CowStr<'a> {
    let split = dest.find(['?', '#']).unwrap_or(dest.len());
    let (target, suffix) = dest.split_at(split);
    if target.is_empty() || target.starts_with('/') || has_scheme(target) {
        return dest;
    }
    let Some(path) = resolve(from, target) else { return dest };
    match site.get(&path) {
        Some(site_path) => CowStr::from(format!("{site_path}{suffix}")),
        None => dest,
    }
}

/// `mailto:x`, `rc://x`, `https://x`: a URL scheme before any `/`.
fn has_scheme(target: &str) -> bool {
    target.split_once(':').is_some_and(|(scheme, _)| {
        scheme.starts_with(|c: char| c.is_ascii_alphabetic())
            && scheme.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
    })
}

/// The repository path a relative `target` names from the file at `from`, its
/// percent-escapes decoded; `None` when it climbs out of the repository.
fn resolve(from: &str, target: &str) -> Option<String> {
    let target = percent_decode(target);
    let mut parts: Vec<&str> = from.split('/').collect();
    parts.pop();
    for part in target.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            part => parts.push(part),
        }
    }
    Some(parts.join("/"))
}

fn percent_decode(text: &str) -> Cow<'_, str> {
    if !text.contains('%') {
        return Cow::Borrowed(text);
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

fn metadata_title(block: &str) -> Option<String> {
    block.lines().find_map(|line| {
        let value = line.strip_prefix("title:")?.trim().trim_matches(|c| c == '"' || c == '\'');
        (!value.is_empty()).then(|| value.to_owned())
    })
}

fn plain_text(events: &[Event<'_>]) -> String {
    let mut text = String::new();
    for event in events {
        if let Event::Text(t) | Event::Code(t) = event {
            text.push_str(t);
        }
    }
    text.trim().to_owned()
}

/// GitHub-like heading ids: lower case, letters and digits kept, spaces to `-`.
fn slug(text: &str) -> String {
    let mut slug = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_alphanumeric() {
            slug.extend(c.to_lowercase());
        } else if (c == ' ' || c == '-' || c == '_') && !slug.ends_with('-') {
            slug.push('-');
        }
    }
    let slug = slug.trim_matches('-').to_owned();
    if slug.is_empty() { "section".into() } else { slug }
}

fn unique(used: &mut HashMap<String, usize>, slug: String) -> String {
    let count = used.entry(slug.clone()).or_insert(0);
    *count += 1;
    if *count == 1 { slug } else { format!("{slug}-{}", *count - 1) }
}

/// Escapes text for HTML.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    push_escaped(&mut out, text);
    out
}

fn push_escaped(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_gets_tables_footnotes_strikethrough_and_heading_ids() {
        let text = "---\ntitle: The Guide\nauthor: x\n---\n# Intro\n\nSee [next](part/two.md#setup) and [site](https://x.org/a.md).\n\n\
                    | a | b |\n|---|---|\n| 1 | 2 |\n\n~~old~~ new[^1]\n\n[^1]: A note.\n\n## Intro\n";
        let page = markdown(text, "docs/guide.md");
        assert_eq!(page.title, "The Guide");
        assert!(page.body.contains("<h1 id=\"intro\">Intro</h1>"), "{}", page.body);
        assert!(page.body.contains("<h2 id=\"intro-1\">Intro</h2>"), "{}", page.body);
        assert!(page.body.contains("href=\"part/two.html#setup\""));
        assert!(page.body.contains("href=\"https://x.org/a.md\""));
        assert!(page.body.contains("<table>") && page.body.contains("<del>old</del>"));
        assert!(page.body.contains("footnote-definition"));
        assert!(!page.body.contains("author"), "the metadata block is not rendered");
        assert_eq!(markdown("plain text", "a/b.md").title, "b");
    }

    #[test]
    fn layouts_are_filled_and_escaped() {
        let page = Page { title: "A <b> & c".into(), body: "<p>x</p>".into() };
        let html = wrap("{{ title }}|{{content}}|{{ root }}|{{ nope }}", &page, "a/b/c.md", "o/r", "abc");
        assert_eq!(html, "A &lt;b&gt; &amp; c|<p>x</p>|../../|{{nope}}");
    }

    #[test]
    fn headings_with_an_anchor_become_section_headers() {
        let cases = [
            ("# <a id=\"figs-metaphor\"/>Metaphor", "<h1 id=\"figs-metaphor\" class=\"section-header\">Metaphor</h1>"),
            (
                "### <a id=\"translate-names\"/> How to Translate Names",
                "<h3 id=\"translate-names\" class=\"section-header\">How to Translate Names</h3>",
            ),
            ("## <a id=\"exo-01\"></a>Exodus 1", "<h2 id=\"exo-01\" class=\"section-header\">Exodus 1</h2>"),
            (
                "#### <A ID='kept' name=x>Around</A> *text*",
                "<h4 id=\"kept\" class=\"section-header\">Around <em>text</em></h4>",
            ),
            ("# <a id=\"a&amp;b\"/>Amp", "<h1 id=\"a&amp;b\" class=\"section-header\">Amp</h1>"),
            (
                "# <a id=\"one\"/><a id=\"two\"/>Both",
                "<h1 id=\"one\" class=\"section-header\"><a id=\"two\"/>Both</h1>",
            ),
            ("Setext <a id=\"setext\"/>\n===", "<h1 id=\"setext\" class=\"section-header\">Setext</h1>"),
            // Not section anchors: a link with an id, an anchor without one, an empty id.
            ("# <a href=\"#x\" id=\"z\">Link</a>", "<h1 id=\"link\"><a href=\"#x\" id=\"z\">Link</a></h1>"),
            ("# <a name=\"n\"/>Named", "<h1 id=\"named\"><a name=\"n\"/>Named</h1>"),
            ("# <a id=\"\"/>Empty", "<h1 id=\"empty\"><a id=\"\"/>Empty</h1>"),
            ("# <abbr id=\"ab\">Abbr</abbr>", "<h1 id=\"abbr\"><abbr id=\"ab\">Abbr</abbr></h1>"),
            ("# Plain heading", "<h1 id=\"plain-heading\">Plain heading</h1>"),
            // Outside a heading an anchor stays where it is.
            ("<a id=\"para\"/>Text", "<p><a id=\"para\"/>Text</p>"),
        ];
        for (text, html) in cases {
            let page = markdown(text, "a.md");
            assert_eq!(page.body.trim_end(), html, "{text}");
        }
        let page = markdown("# <a id=\"intro\"/>Welcome\n\n## Intro\n", "a.md");
        assert_eq!(page.title, "Welcome");
        assert!(
            page.body.contains("<h2 id=\"intro-1\">Intro</h2>"),
            "a generated id does not repeat an anchor's: {}",
            page.body
        );
    }

    #[test]
    fn tx_manager_templates_take_dollar_placeholders() {
        let page = Page { title: "EN <TA>".into(), body: "<p>$title {{ title }}</p>".into() };
        let fields = Fields { root: "../", path: "a/b.md", repo: "o/r", commit: "abc" };
        let cases = [
            (
                "<title>$title</title><div id=\"content\">$content</div>",
                "<title>EN &lt;TA&gt;</title><div id=\"content\"><p>$title {{ title }}</p></div>",
            ),
            (
                "${title}|${content}|$root|${path}|$repo|$commit",
                "EN &lt;TA&gt;|<p>$title {{ title }}</p>|../|a/b.md|o/r|abc",
            ),
            ("$$ $$title $title.", "$ $title EN &lt;TA&gt;."),
            (
                "$nope ${nope} $titles $title_x $Title $5 $ ${ title } ${title $é $",
                "$nope ${nope} $titles $title_x $Title $5 $ ${ title } ${title $é $",
            ),
            ("no placeholders {{ nope }}", "no placeholders {{ nope }}"),
            // A layout with a `{{ }}` placeholder is gitauto's: `$` is text.
            ("{{ title }} costs $5, $title, $$", "EN &lt;TA&gt; costs $5, $title, $$"),
        ];
        for (layout, html) in cases {
            assert_eq!(Template::parse(layout).fill(&page, &fields), html, "{layout}");
        }
        assert_eq!(wrap("<b>$title</b>", &page, "x.md", "o/r", "abc"), "<b>EN &lt;TA&gt;</b>");
    }

    #[test]
    fn flat_sites_point_links_and_images_at_base_names() {
        let site: HashMap<String, String> = [
            ("exo/01/01.md", "01.html"),
            ("exo/01/intro.md", "intro.html"),
            ("media/my map.png", "my map.png"),
            ("media/logo.png", "logo.png"),
        ]
        .map(|(path, target)| (path.to_owned(), target.to_owned()))
        .into_iter()
        .collect();
        let text = "[a](./01.md) [b](../02/intro.md) [c](../../exo/01/01.md#x) [d](01.md?v=1#y) \
                    [e](https://x.org/01.md) [f](#frag) [g](../../../out.md) [h](rc://en/ta/x) [i](/exo/01/01.md) \
                    ![m](../../media/my%20map.png) ![l](../../media/logo.png \"Logo\")";
        let page = markdown_with(text, "exo/01/intro.md", Links::Flat(&site));
        for href in [
            "href=\"01.html\"",
            "href=\"../02/intro.md\"",
            "href=\"01.html#x\"",
            "href=\"01.html?v=1#y\"",
            "href=\"https://x.org/01.md\"",
            "href=\"#frag\"",
            "href=\"../../../out.md\"",
            "href=\"rc://en/ta/x\"",
            "href=\"/exo/01/01.md\"",
            "src=\"my%20map.png\"",
            "src=\"logo.png\" alt=\"l\" title=\"Logo\"",
        ] {
            assert!(page.body.contains(href), "{href} in {}", page.body);
        }
        // Nested, images stay and `.md` links go to their `.html` alongside.
        let nested = markdown("[b](../02/intro.md) ![l](../../media/logo.png)", "exo/01/intro.md");
        assert!(
            nested.body.contains("href=\"../02/intro.html\"") && nested.body.contains("src=\"../../media/logo.png\"")
        );
    }
}
