//! A stand-in for the Hugging Face hub on 127.0.0.1, for the tests of the
//! download code (`convert longbench --hub`, `tokenize --tokenizer ORG/NAME`):
//! nothing may reach the internet, so the hub is played by a small blocking
//! HTTP/1.1 server whose answers each test routes itself. It logs every
//! request's path and `Authorization` header, and stops when dropped or
//! after two minutes, whichever comes first.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// One request as the stand-in received it.
pub struct Request {
    /// The path and query, e.g. `/org/model/resolve/main/tokenizer.json`.
    pub path: String,
    /// Header names in lower case.
    pub headers: HashMap<String, String>,
    /// The server's own URL (`http://127.0.0.1:PORT`), for redirects.
    pub endpoint: String,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }

    /// Whether the request carries `Authorization: Bearer TOKEN`.
    pub fn has_token(&self, token: &str) -> bool {
        self.header("authorization") == Some(&format!("Bearer {token}"))
    }
}

/// An answer: status, headers, body (`Content-Length` and
/// `Connection: close` are added).
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    /// A 200 with `body`.
    pub fn ok(body: &[u8], headers: &[(&str, &str)]) -> Reply {
        Reply::with(200, headers, body)
    }

    pub fn with(status: u16, headers: &[(&str, &str)], body: &[u8]) -> Reply {
        Reply {
            status,
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            body: body.to_vec(),
        }
    }

    /// An error the way the hub reports one: `X-Error-Code` (when given)
    /// and `X-Error-Message` headers, the message as the body.
    pub fn error(status: u16, code: Option<&str>, message: &str) -> Reply {
        let mut headers = vec![("X-Error-Message", message)];
        if let Some(code) = code {
            headers.push(("X-Error-Code", code));
        }
        Reply::with(status, &headers, message.as_bytes())
    }

    /// `data` whole (200), or the part a `Range: bytes=a-b` / `bytes=a-`
    /// header of `req` asks for (206 with `Content-Range`).
    pub fn ranged(req: &Request, data: &[u8], headers: &[(&str, &str)]) -> Reply {
        let len = data.len();
        let Some(spec) = req.header("range").and_then(|r| r.strip_prefix("bytes=")) else {
            return Reply::ok(data, headers);
        };
        let (a, b) = spec.split_once('-').unwrap_or((spec, ""));
        let start: usize = a.parse().unwrap_or(0).min(len);
        let end: usize = b.parse().map_or(len, |e: usize| (e + 1).min(len));
        let content_range = format!("bytes {start}-{}/{len}", end.max(start + 1) - 1);
        let mut reply = Reply::with(206, headers, &data[start..end.max(start)]);
        reply
            .headers
            .push(("Content-Range".to_string(), content_range));
        reply
    }

    fn write(&self, stream: &mut TcpStream) {
        let reason = match self.status {
            200 => "OK",
            206 => "Partial Content",
            302 => "Found",
            401 => "Unauthorized",
            404 => "Not Found",
            _ => "Error",
        };
        let mut head = format!("HTTP/1.1 {} {reason}\r\n", self.status);
        for (k, v) in &self.headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str(&format!(
            "Content-Length: {}\r\nConnection: close\r\n\r\n",
            self.body.len()
        ));
        let _ = stream.write_all(head.as_bytes());
        let _ = stream.write_all(&self.body);
        let _ = stream.flush();
    }
}

/// (path, authorization header) of each request received.
type RequestLog = Arc<Mutex<Vec<(String, Option<String>)>>>;

/// The running stand-in hub.
pub struct FakeHub {
    pub endpoint: String,
    stop: Arc<AtomicBool>,
    log: RequestLog,
    thread: Option<JoinHandle<()>>,
}

impl FakeHub {
    /// Serves each request with `route`, one connection at a time.
    pub fn start(route: impl Fn(&Request) -> Reply + Send + 'static) -> FakeHub {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let endpoint = format!("http://{}", listener.local_addr().expect("addr"));
        let stop = Arc::new(AtomicBool::new(false));
        let log: RequestLog = Arc::new(Mutex::new(Vec::new()));
        let (stop2, log2, endpoint2) = (stop.clone(), log.clone(), endpoint.clone());
        let thread = std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(120);
            while !stop2.load(Ordering::SeqCst) && Instant::now() < deadline {
                match listener.accept() {
                    Ok((stream, _)) => serve(stream, &endpoint2, &log2, &route),
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    Err(_) => break,
                }
            }
        });
        FakeHub {
            endpoint,
            stop,
            log,
            thread: Some(thread),
        }
    }

    /// (path, authorization header) of each request so far, in order.
    pub fn requests(&self) -> Vec<(String, Option<String>)> {
        self.log.lock().expect("lock").clone()
    }
}

impl Drop for FakeHub {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(
    mut stream: TcpStream,
    endpoint: &str,
    log: &RequestLog,
    route: &impl Fn(&Request) -> Reply,
) {
    stream.set_nonblocking(false).expect("blocking");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let mut lines = head.lines();
    let path = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or("")
        .to_string();
    let headers: HashMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let auth = headers.get("authorization").cloned();
    log.lock().expect("lock").push((path.clone(), auth));
    let request = Request {
        path,
        headers,
        endpoint: endpoint.to_string(),
    };
    route(&request).write(&mut stream);
}
