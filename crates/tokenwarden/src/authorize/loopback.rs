//! [`LoopbackListener`]: the one-shot HTTP listener on a loopback redirect URI.

use super::callback::MAX_CALLBACK_HEAD;
use super::{AuthorizationRequest, CallbackProblem, Code};
use crate::error::{Error, SignInFailure};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use url::Url;

/// How long one connection may take to send its request head.
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);

/// Listens on a loopback redirect URI (`http://127.0.0.1:PORT/path`, `http://[::1]:PORT/path` or
/// `http://localhost:PORT/path`, where it listens on both) for the one callback of a sign-in.
///
/// It binds loopback addresses only, so nothing off the machine can reach it. It answers every
/// request (a small page; the browser shows it), and stops at the first request that is the
/// callback of the sign-in in progress: a request for another path, or with another `state` (a
/// stale tab, a forged request from another local program), is refused and the wait goes on. The
/// code, the `state` and the query string are never logged.
#[derive(Debug)]
pub struct LoopbackListener {
    listeners: Vec<TcpListener>,
    redirect_uri: Url,
}

/// One request for the main loop: its target, and where to send the page to answer with.
type Arrival = (String, oneshot::Sender<Page>);

/// An answer to the browser.
struct Page {
    status: &'static str,
    title: &'static str,
    text: String,
}

impl LoopbackListener {
    /// Binds the redirect URI's port on loopback.
    ///
    /// # Errors
    /// [`Error::Config`] when the redirect URI is not plain `http` to a loopback host with an
    /// explicit port (what the OAuth client can register), or the port cannot be bound (in use:
    /// the message says so).
    pub async fn bind(redirect_uri: &Url) -> Result<Self, Error> {
        let port = match (redirect_uri.scheme(), redirect_uri.port()) {
            ("http", Some(port)) if port != 0 => port,
            _ => return Err(not_loopback(redirect_uri)),
        };
        let addrs: Vec<IpAddr> = match redirect_uri.host() {
            Some(url::Host::Ipv4(ip)) if ip.is_loopback() => vec![IpAddr::V4(ip)],
            Some(url::Host::Ipv6(ip)) if ip.is_loopback() => vec![IpAddr::V6(ip)],
            Some(url::Host::Domain(d)) if d.eq_ignore_ascii_case("localhost") => {
                vec![Ipv4Addr::LOCALHOST.into(), Ipv6Addr::LOCALHOST.into()]
            }
            _ => return Err(not_loopback(redirect_uri)),
        };
        let mut listeners = Vec::new();
        let mut first_error = None;
        for ip in addrs {
            match TcpListener::bind(SocketAddr::new(ip, port)).await {
                Ok(l) => listeners.push(l),
                Err(e) => {
                    first_error.get_or_insert((ip, e));
                }
            }
        }
        // `localhost` is served on whichever of 127.0.0.1 and ::1 could be bound (a machine
        // without IPv6 has no ::1).
        match (listeners.is_empty(), first_error) {
            (true, Some((ip, e))) => Err(Error::Config(
                if e.kind() == std::io::ErrorKind::AddrInUse {
                    format!(
                        "cannot listen for the sign-in on {}: port {port} is in use (another login waiting, or another program): stop it, or use another redirect URI (and register that one on the OAuth client)",
                        SocketAddr::new(ip, port)
                    )
                } else {
                    format!(
                        "cannot listen for the sign-in on {}: {e}",
                        SocketAddr::new(ip, port)
                    )
                },
            )),
            _ => Ok(Self {
                listeners,
                redirect_uri: redirect_uri.clone(),
            }),
        }
    }

    /// The addresses listened on.
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.listeners
            .iter()
            .filter_map(|l| l.local_addr().ok())
            .collect()
    }

    /// Waits at most `timeout` for the callback of `request`, and returns its code.
    ///
    /// # Errors
    /// [`Error::SignIn`]: [`SignInFailure::TimedOut`] (saying how many requests were refused on
    /// the way), [`SignInFailure::Callback`] when the authorization server sent back an error
    /// (`access_denied`...) or a callback without a code, [`SignInFailure::Listener`] when
    /// accepting connections failed.
    pub async fn wait(
        self,
        request: &AuthorizationRequest,
        timeout: Duration,
    ) -> Result<Code, Error> {
        if request.redirect_uri() != &self.redirect_uri {
            return Err(Error::Config(format!(
                "the sign-in request redirects to {}, but the listener is on {}",
                request.redirect_uri(),
                self.redirect_uri
            )));
        }
        let (tx, mut rx) = mpsc::channel::<Arrival>(16);
        let mut accepting = tokio::task::JoinSet::new();
        for listener in self.listeners {
            accepting.spawn(accept(listener, tx.clone()));
        }
        drop(tx);
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        let mut ignored = 0u32;
        loop {
            let (target, reply) = tokio::select! {
                () = &mut deadline => {
                    return Err(Error::SignIn(SignInFailure::TimedOut { waited: timeout, ignored }));
                }
                arrival = rx.recv() => match arrival {
                    Some(a) => a,
                    None => return Err(Error::SignIn(SignInFailure::Listener(
                        "the listener stopped accepting connections".into(),
                    ))),
                },
            };
            // The path only: the query holds the code and the state.
            let path = target.split('?').next().unwrap_or_default();
            match request.callback(&target) {
                Ok(code) => {
                    tracing::debug!(path, "sign-in callback received");
                    let _ = reply.send(Page {
                        status: "200 OK",
                        title: "Signed in",
                        text:
                            "You are signed in. You can close this tab and go back to the terminal."
                                .into(),
                    });
                    return Ok(code);
                }
                Err(CallbackProblem::NotTheCallback) => {
                    let _ = reply.send(Page {
                        status: "404 Not Found",
                        title: "Not found",
                        text: "This address only receives a sign-in.".into(),
                    });
                }
                Err(CallbackProblem::WrongState) => {
                    ignored += 1;
                    tracing::warn!(
                        path,
                        "refused a request to the redirect URI that does not belong to this sign-in (wrong or missing state); still waiting"
                    );
                    let _ = reply.send(Page {
                        status: "400 Bad Request",
                        title: "Not this sign-in",
                        text: "This answer does not belong to the sign-in in progress (an old tab?) and was ignored. Use the link the terminal shows now.".into(),
                    });
                }
                Err(problem) => {
                    let _ = reply.send(Page {
                        status: "400 Bad Request",
                        title: "Sign-in failed",
                        text: format!("{problem}. See the terminal."),
                    });
                    return Err(Error::SignIn(SignInFailure::Callback(problem)));
                }
            }
        }
    }
}

fn not_loopback(redirect_uri: &Url) -> Error {
    Error::Config(format!(
        "redirect URI {redirect_uri} cannot receive the sign-in here: it must be plain http to 127.0.0.1, [::1] or localhost with a port, such as http://127.0.0.1:8765/callback (and be registered on the OAuth client)"
    ))
}

/// Accepts connections, each read in its own task so that a slow one holds up nothing.
async fn accept(listener: TcpListener, to: mpsc::Sender<Arrival>) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(serve(stream, to.clone()));
            }
            Err(e) => {
                tracing::debug!(error = %e, "accepting a connection failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Reads one request head, hands its target over, writes the page the main loop answers with.
async fn serve(mut stream: TcpStream, to: mpsc::Sender<Arrival>) {
    let head = tokio::time::timeout(HEAD_TIMEOUT, read_head(&mut stream)).await;
    let page = match head.ok().flatten().as_deref().and_then(request_target) {
        None => Page {
            status: "400 Bad Request",
            title: "Bad request",
            text: "This address only receives a sign-in.".into(),
        },
        Some(target) => {
            let (reply, answer) = oneshot::channel();
            match to.send((target, reply)).await {
                Ok(()) => answer.await.unwrap_or_else(|_| finished()),
                Err(_) => finished(),
            }
        }
    };
    let _ = write_page(&mut stream, &page).await;
}

fn finished() -> Page {
    Page {
        status: "410 Gone",
        title: "Sign-in over",
        text: "This sign-in is already over. Go back to the terminal.".into(),
    }
}

/// The request head, up to the blank line; `None` if it is longer than [`MAX_CALLBACK_HEAD`] or
/// the connection ends first.
async fn read_head(stream: &mut TcpStream) -> Option<String> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            buf.truncate(end);
            return String::from_utf8(buf).ok();
        }
        if buf.len() > MAX_CALLBACK_HEAD {
            return None;
        }
    }
}

/// The target of a `GET` request line (`GET /callback?code=... HTTP/1.1`).
fn request_target(head: &str) -> Option<String> {
    let line = head.lines().next()?;
    let mut parts = line.split(' ');
    let (method, target, version) = (parts.next()?, parts.next()?, parts.next()?);
    (method == "GET"
        && target.starts_with('/')
        && version.starts_with("HTTP/")
        && parts.next().is_none())
    .then(|| target.to_string())
}

async fn write_page(stream: &mut TcpStream, page: &Page) -> std::io::Result<()> {
    let body = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{title} - tokenwarden</title></head><body><h1>{title}</h1><p>{text}</p></body></html>",
        title = page.title,
        text = escape(&page.text)
    );
    let response = format!(
        "HTTP/1.1 {}\r\ncontent-type: text/html; charset=utf-8\r\ncontent-length: {}\r\ncache-control: no-store\r\nreferrer-policy: no-referrer\r\nconnection: close\r\n\r\n{body}",
        page.status,
        body.len()
    );
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_get_request_lines_give_a_target() {
        assert_eq!(
            request_target("GET /callback?code=1 HTTP/1.1\r\nHost: x").as_deref(),
            Some("/callback?code=1")
        );
        for bad in [
            "POST /callback HTTP/1.1",
            "GET http://x/callback HTTP/1.1",
            "GET /callback",
            "GET /a b HTTP/1.1",
            "",
        ] {
            assert_eq!(request_target(bad), None, "{bad}");
        }
    }

    #[tokio::test]
    async fn only_loopback_redirect_uris_with_a_port_are_listened_on() {
        for bad in [
            "https://127.0.0.1:8765/callback",
            "http://127.0.0.1/callback",
            "http://example.com:8765/callback",
            "http://10.0.0.1:8765/callback",
            "http://0.0.0.0:8765/callback",
        ] {
            let e = LoopbackListener::bind(&Url::parse(bad).unwrap())
                .await
                .unwrap_err();
            assert!(
                e.to_string().contains("127.0.0.1, [::1] or localhost"),
                "{bad}: {e}"
            );
        }
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = taken.local_addr().unwrap().port();
        let url = Url::parse(&format!("http://127.0.0.1:{port}/callback")).unwrap();
        let e = LoopbackListener::bind(&url).await.unwrap_err();
        assert!(e.to_string().contains("is in use"), "{e}");
        drop(taken);
        let l = LoopbackListener::bind(&url).await.unwrap();
        assert!(l.local_addrs().iter().all(|a| a.ip().is_loopback()));
    }
}
