//! The panel's forms as a browser-less client meets them: the `csrf` field of a page, and
//! the pre-session cookie and token the sign-in and setup forms need.

/// The value of the first `csrf` field of a page.
pub fn form_token(page: &str) -> Option<String> {
    let start = page.find("name=\"csrf\" value=\"")? + 19;
    let len = page[start..].find('"')?;
    Some(page[start..start + len].to_string())
}

/// Loads the pre-session page at `path` (`/login` or `/setup`) and returns the cookie pair
/// (`capstan_form=…`) to send back and the form token that goes with it.
pub async fn pre_session(http: &reqwest::Client, base: &str, path: &str) -> (String, String) {
    let response = http
        .get(format!("{base}{path}"))
        .send()
        .await
        .expect("the panel answers");
    let cookie = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next())
        .find(|pair| pair.starts_with("capstan_form="))
        .unwrap_or_default()
        .to_string();
    let page = response.text().await.unwrap_or_default();
    let token = form_token(&page).unwrap_or_else(|| panic!("no form token on {path}: {page}"));
    (cookie, token)
}
