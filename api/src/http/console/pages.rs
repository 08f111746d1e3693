//! The console's pages as HTML (maud escapes every value): one layout, labelled controls, no
//! inline script (the scripts are files: the console's own, the code editor and htmx), and a
//! stylesheet of the console's own that reads at 1280 px and at 390 px.

use crate::domain::auth::Scope;
use crate::store::{Function, FunctionSummary, KeyInfo};
use maud::{DOCTYPE, Markup, html};

/// What a signed-in page shows of its session: whose it is, and the token its forms carry.
pub struct Session<'a> {
    pub namespace: &'a str,
    pub csrf_token: &'a str,
    /// Whether its key is an admin's: the namespaces page is theirs only.
    pub admin: bool,
}

pub(super) fn layout(title: &str, session: Option<&Session<'_>>, body: Markup) -> Markup {
    page(title, session, false, body)
}

/// A page; `script`: with the console's scripts (copy buttons, live logs, the code editor,
/// htmx).
pub(super) fn page(
    title: &str,
    session: Option<&Session<'_>>,
    script: bool,
    body: Markup,
) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · faas console" }
                link rel="stylesheet" href="/console/console.css";
                @if script {
                    // htmx would add an inline <style> and may evaluate attributes; the CSP
                    // forbids both, and the console needs neither.
                    meta name="htmx-config" content=r#"{"includeIndicatorStyles":false,"allowEval":false,"allowScriptTags":false}"#;
                    script src=(super::assets::vendor_url("htmx.min.js")) defer {}
                    script src=(super::assets::vendor_url("editor.js")) defer {}
                    script src="/console/console.js" defer {}
                }
            }
            body {
                a class="skip" href="#main" { "Skip to content" }
                header class="top" {
                    a class="brand" href="/console/functions" { "faas console" }
                    @if let Some(session) = session {
                        nav aria-label="Console" {
                            a href="/console/overview" { "Overview" }
                            " "
                            a href="/console/functions" { "Functions" }
                            " "
                            a href="/console/keys" { "Keys" }
                            @if session.admin {
                                " "
                                a href="/console/namespaces" { "Namespaces" }
                            }
                        }
                        span class="who" { "Namespace " strong { (session.namespace) } }
                        form method="post" action="/console/sign-out" class="inline" {
                            input type="hidden" name="csrf" value=(session.csrf_token);
                            button type="submit" { "Sign out" }
                        }
                    }
                }
                main id="main" { (body) }
            }
        }
    }
}

/// A page with one message.
pub fn message(title: &str, text: &str) -> Markup {
    layout(
        title,
        None,
        html! {
            h1 { (title) }
            p { (text) }
            p { a href="/console/sign-in" { "To the sign-in page" } }
        },
    )
}

/// The sign-in form: an API key, pasted; `message` says what went wrong before.
pub fn sign_in(csrf_token: &str, next: &str, message: Option<&str>, auth_disabled: bool) -> Markup {
    layout(
        "Sign in",
        None,
        html! {
            h1 { "Sign in" }
            @if let Some(message) = message {
                p class="error" role="alert" { (message) }
            }
            @if auth_disabled {
                p { "Keys are off on this api (AUTH=disabled): any key signs in to namespace default." }
            }
            form method="post" action="/console/sign-in" class="card" {
                input type="hidden" name="csrf" value=(csrf_token);
                input type="hidden" name="next" value=(next);
                label for="key" { "API key" }
                input id="key" name="key" type="password" autocomplete="off" required
                    autofocus aria-describedby="key-help";
                p id="key-help" class="help" {
                    "The console keeps a session on the server; the key itself is stored nowhere."
                }
                button type="submit" { "Sign in" }
            }
        },
    )
}

/// A duration in milliseconds as the pages show it; `–` for none.
pub(super) fn ms(value: Option<f64>) -> String {
    value.map_or_else(|| "–".to_owned(), |ms| format!("{ms:.1} ms"))
}

/// A page of the namespace's functions.
pub struct FunctionList<'a> {
    pub summaries: &'a [FunctionSummary],
    /// 1-based.
    pub page: i64,
    pub per_page: i64,
    /// Functions of the namespace, on every page.
    pub total: i64,
}

/// Calls per hour as 24 bars, the tallest the chart's height; a labelled image.
fn sparkline(name: &str, hourly: &[i64]) -> Markup {
    let most = hourly.iter().copied().max().unwrap_or(0).max(1) as f64;
    let calls: i64 = hourly.iter().sum();
    html! {
        svg class="spark" viewBox="0 0 96 24" width="96" height="24" role="img"
            aria-label={ (name) ": " (calls) " calls over 24 hours, per hour" } {
            @for (i, n) in hourly.iter().enumerate() {
                @let h = (*n as f64 / most * 22.0).max(if *n > 0 { 1.0 } else { 0.0 });
                rect class="spark-bar" x=(i * 4) y=(format!("{:.1}", 24.0 - h)) width="3" height=(format!("{h:.1}")) {}
            }
        }
    }
}

/// The namespace's functions, a page of them, each with its last 24 hours.
pub fn functions(session: &Session<'_>, list: &FunctionList<'_>) -> Markup {
    let summaries = list.summaries;
    let first = (list.page - 1) * list.per_page + 1;
    let last = first + summaries.len() as i64 - 1;
    let pages = (list.total + list.per_page - 1) / list.per_page;
    layout(
        "Functions",
        Some(session),
        html! {
            h1 { "Functions" }
            p { a href="/console/new" class="button" { "New function" } }
            @if summaries.is_empty() {
                p { "No functions in this namespace yet." }
            } @else {
                div class="scroll" {
                    table {
                        caption {
                            "Functions " (first) "–" (last) " of " (list.total) " in namespace " (session.namespace) ", calls over the last 24 hours"
                        }
                        thead {
                            tr {
                                th scope="col" { "Name" }
                                th scope="col" { "Language" }
                                th scope="col" { "Runtime" }
                                th scope="col" { "Route" }
                                th scope="col" class="num" { "Version" }
                                th scope="col" class="num" { "Calls" }
                                th scope="col" class="num" { "Errors" }
                                th scope="col" class="num" { "p50" }
                                th scope="col" class="num" { "p99" }
                                th scope="col" class="num" { "Cold starts" }
                                th scope="col" { "Calls per hour" }
                            }
                        }
                        tbody {
                            @for f in summaries {
                                tr {
                                    th scope="row" { a href={ "/console/functions/" (f.id) } { (f.name) } }
                                    td { (f.language) }
                                    td { (f.runtime) }
                                    td { code { (f.route) } }
                                    td class="num" { (f.version) }
                                    td class="num" { (f.calls) }
                                    td class="num" { (f.errors) }
                                    td class="num" { (ms(f.p50_ms)) }
                                    td class="num" { (ms(f.p99_ms)) }
                                    td class="num" { (f.cold_starts) }
                                    td { (sparkline(&f.name, &f.hourly)) }
                                }
                            }
                        }
                    }
                }
                @if pages > 1 {
                    nav aria-label="Pages of functions" class="filters" {
                        @if list.page > 1 {
                            a href={ "/console/functions?page=" (list.page - 1) } rel="prev" { "← Previous" }
                            " "
                        }
                        span { "Page " (list.page) " of " (pages) }
                        @if list.page < pages {
                            " "
                            a href={ "/console/functions?page=" (list.page + 1) } rel="next" { "Next →" }
                        }
                    }
                }
            }
        },
    )
}

/// The namespace's keys, the form that makes one, and the key just made (`made`, shown this
/// once) or why the form failed (`problem`).
pub fn keys(
    session: &Session<'_>,
    keys: &[KeyInfo],
    mintable: &[Scope],
    made: Option<&str>,
    problem: Option<&str>,
) -> Markup {
    page(
        "Keys",
        Some(session),
        made.is_some(),
        html! {
            h1 { "Keys" }
            @if let Some(problem) = problem {
                p class="error" role="alert" { (problem) }
            }
            @if let Some(key) = made {
                section class="card" aria-labelledby="made-title" {
                    h2 id="made-title" { "Your new key" }
                    p { "Copy it now: it is shown this once, and stored nowhere." }
                    label for="new-key" { "Key" }
                    input id="new-key" type="text" readonly value=(key);
                    button type="button" data-copy="new-key" { "Copy" }
                }
            }
            div class="scroll" {
                table {
                    caption { "Live keys of namespace " (session.namespace) }
                    thead {
                        tr {
                            th scope="col" { "Id" }
                            th scope="col" { "Scopes" }
                            th scope="col" { "Description" }
                            th scope="col" { "Made" }
                            th scope="col" { "Expires" }
                            th scope="col" { span class="visually-hidden" { "Revoke" } }
                        }
                    }
                    tbody {
                        @for key in keys {
                            @let id = key.id.simple().to_string();
                            tr {
                                th scope="row" { code { (id) } }
                                td { (key.scopes.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")) }
                                td { (key.description) }
                                td { (key.created_at.format("%Y-%m-%d %H:%M UTC")) }
                                td { (key.expires_at.map_or_else(|| "never".to_owned(), |at| at.format("%Y-%m-%d %H:%M UTC").to_string())) }
                                td {
                                    form method="post" action={ "/console/keys/" (id) "/revoke" } class="inline" {
                                        input type="hidden" name="csrf" value=(session.csrf_token);
                                        button type="submit" class="danger" aria-label={ "Revoke key " (id) } { "Revoke" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            h2 { "Make a key" }
            form method="post" action="/console/keys" class="card" {
                input type="hidden" name="csrf" value=(session.csrf_token);
                fieldset {
                    legend { "Scopes" }
                    @for scope in mintable {
                        label class="check" {
                            input type="checkbox" name="scope" value=(scope.as_str());
                            " " (scope.as_str())
                        }
                    }
                }
                label for="description" { "Description" }
                input id="description" name="description" type="text" maxlength="256";
                button type="submit" { "Make key" }
            }
        },
    )
}

/// The tabs of a function's pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tab {
    Code,
    Settings,
    Test,
    Logs,
    Build,
    Versions,
}

impl Tab {
    const ALL: [Tab; 6] = [
        Tab::Code,
        Tab::Settings,
        Tab::Test,
        Tab::Logs,
        Tab::Build,
        Tab::Versions,
    ];

    fn title(self) -> &'static str {
        match self {
            Tab::Code => "Code and calls",
            Tab::Settings => "Settings",
            Tab::Test => "Test",
            Tab::Logs => "Live logs",
            Tab::Build => "Build",
            Tab::Versions => "Versions",
        }
    }

    fn path(self) -> &'static str {
        match self {
            Tab::Code => "",
            Tab::Settings => "/settings",
            Tab::Test => "/test",
            Tab::Logs => "/logs",
            Tab::Build => "/build",
            Tab::Versions => "/versions",
        }
    }
}

/// A function page's heading and its tabs, `current` marked.
pub fn function_head(function: &Function, current: Tab) -> Markup {
    html! {
        p { a href="/console/functions" { "← Functions" } }
        h1 { (function.name) " " span class="muted" { "version " (function.version) } }
        nav aria-label="Function" class="tabs" {
            @for tab in Tab::ALL {
                @if tab == current {
                    a href={ "/console/functions/" (function.id) (tab.path()) } aria-current="page" { (tab.title()) }
                } @else {
                    a href={ "/console/functions/" (function.id) (tab.path()) } { (tab.title()) }
                }
            }
        }
    }
}

/// A form's field problem, shown beside it: its id is what the field's `aria-describedby`
/// names.
pub fn field_error(field: &str, problem: Option<&super::forms::FieldProblem>) -> Markup {
    html! {
        @if let Some(problem) = problem.filter(|p| p.field.is_some_and(|f| f == field)) {
            p id={ (field) "-error" } class="error" role="alert" { (problem.message) }
        }
    }
}
