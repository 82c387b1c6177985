//! Markdown to HTML, with no I/O, so that the plugin and a native benchmark run the
//! very same code: CommonMark plus tables, footnotes, strikethrough and task lists
//! (pulldown-cmark); headings get `id`s; links to `.md` files point at their `.html`;
//! a leading `---` metadata block is not rendered (its `title:` names the page).

use pulldown_cmark::{CowStr, Event, HeadingLevel, MetadataBlockKind, Options, Parser, Tag, TagEnd};
use std::collections::HashMap;

/// The default page layout. `{{ title }}` and `{{ content }}` are filled in; so are
/// `{{ root }}` (the relative path to the site's root, ending in `/`), `{{ path }}`,
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

/// Renders one Markdown document whose path (for the fallback title) is `path`.
pub fn markdown(text: &str, path: &str) -> Page {
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
            match event {
                Event::Start(Tag::MetadataBlock(MetadataBlockKind::YamlStyle)) => in_metadata = true,
                Event::End(TagEnd::MetadataBlock(_)) => in_metadata = false,
                Event::Text(text) if in_metadata => title = title.take().or_else(|| metadata_title(&text)),
                _ if in_metadata => {}
                Event::Start(Tag::Heading { .. }) => heading.push(event),
                Event::End(TagEnd::Heading(_)) => {
                    heading.push(event);
                    let text = plain_text(&heading[1..]);
                    if let Some(Event::Start(Tag::Heading { level, id, .. })) = heading.first_mut() {
                        if first_heading.is_none() && !text.is_empty() && *level <= HeadingLevel::H2 {
                            first_heading = Some(text.clone());
                        }
                        if id.is_none() {
                            *id = Some(CowStr::from(unique(&mut used, slug(&text))));
                        }
                    }
                    ready.extend(heading.drain(..));
                }
                Event::Start(Tag::Link { link_type, dest_url, title: link_title, id }) => {
                    let link =
                        Event::Start(Tag::Link { link_type, dest_url: rewrite_link(dest_url), title: link_title, id });
                    if heading.is_empty() {
                        return Some(link);
                    }
                    heading.push(link);
                }
                other if !heading.is_empty() => heading.push(other),
                other => return Some(other),
            }
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

/// The page in the layout.
pub fn wrap(layout: &str, page: &Page, path: &str, repo: &str, commit: &str) -> String {
    let depth = path.matches('/').count();
    let root = "../".repeat(depth);
    let mut html = String::with_capacity(layout.len() + page.body.len());
    let mut rest = layout;
    while let Some(open) = find_pair(rest, b'{') {
        let Some(close) = find_pair(&rest[open..], b'}').map(|c| open + c) else { break };
        html.push_str(&rest[..open]);
        match rest[open + 2..close].trim() {
            "title" => html.push_str(&escape(&page.title)),
            "content" => html.push_str(&page.body),
            "root" => html.push_str(&root),
            "path" => html.push_str(&escape(path)),
            "repo" => html.push_str(&escape(repo)),
            "commit" => html.push_str(&escape(commit)),
            other => {
                html.push_str("{{");
                html.push_str(other);
                html.push_str("}}");
            }
        }
        rest = &rest[close + 2..];
    }
    html.push_str(rest);
    html
}

/// Where `{{` (or `}}`: `brace` twice) first occurs in `text`. `str::find` with a
/// two-character needle runs the general Two-Way search, which has a SIMD fast path on
/// x86-64 but not in Wasm, where it took a twentieth of the plugin's rendering time;
/// looking for one byte uses `memchr`.
fn find_pair(text: &str, brace: u8) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut from = 0;
    while let Some(at) = text[from..].find(char::from(brace)).map(|at| from + at) {
        if bytes.get(at + 1) == Some(&brace) {
            return Some(at);
        }
        from = at + 1;
    }
    None
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
    out
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
        // Single braces stay text, a third brace belongs to the name, `{{` without `}}` ends the filling.
        let page = Page { title: "T".into(), body: String::new() };
        let html = wrap("{ a}{{title}}{{{title}}}} {{ nope", &page, "a.md", "o/r", "abc");
        assert_eq!(html, "{ a}T{{{title}}}} {{ nope");
        assert_eq!(wrap("é{{title}}}{ {{ title }}", &page, "a.md", "o/r", "abc"), "éT}{ T");
    }
}
