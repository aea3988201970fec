//! A plain blocking HTTP client for the HTTP API's end-to-end tests
//! (`ureq`, no TLS): every request bounded, every status an answer (not
//! an error), bodies read whole up to a bound.
#![allow(dead_code)]

use std::time::Duration;

/// Bound on one request, connect to last byte.
pub const HTTP_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest body a test reads back.
const BODY_BYTES_MAX: u64 = 64 << 20;

/// A response: status, headers (names lowercase), body.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON; panics (with the body) if it is not.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}), status {}: {}", self.status, self.text()))
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(HTTP_TIMEOUT))
        .http_status_as_error(false)
        .build()
        .into()
}

/// `method url` with `body` (PUT, POST); Err only when no answer came.
pub fn try_send(method: &str, url: &str, body: &[u8]) -> Result<Answer, String> {
    let agent = agent();
    let result = match method {
        "GET" => agent.get(url).call(),
        "DELETE" => agent.delete(url).call(),
        "PUT" => agent.put(url).send(body),
        "POST" => agent.post(url).send(body),
        other => return Err(format!("no such method in this client: {other}")),
    };
    let mut response = result.map_err(|e| format!("{method} {url}: {e}"))?;
    let headers = response
        .headers()
        .iter()
        .map(|(n, v)| {
            let v = String::from_utf8_lossy(v.as_bytes()).into_owned();
            (n.as_str().to_ascii_lowercase(), v)
        })
        .collect();
    let body = response
        .body_mut()
        .with_config()
        .limit(BODY_BYTES_MAX)
        .read_to_vec()
        .map_err(|e| format!("{method} {url}: reading the body: {e}"))?;
    Ok(Answer {
        status: response.status().as_u16(),
        headers,
        body,
    })
}

/// `method url` with `body`; panics if no answer came.
pub fn send(method: &str, url: &str, body: &[u8]) -> Answer {
    try_send(method, url, body).unwrap_or_else(|e| panic!("{e}"))
}

pub fn get(url: &str) -> Answer {
    send("GET", url, b"")
}
