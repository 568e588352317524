//! Headless Chromium (Debian's `chromium`) for tests that look at a page: one launch renders a
//! local file, hands back the DOM its scripts left and saves a screenshot, with every network
//! request the browser makes sent to a catching proxy that answers nothing, so a test can say
//! which requests came from the page.

use crate::tool::installed;
use std::io::{BufRead as _, Write as _};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// A headless Chromium with its own fresh profile, and the proxy every request it sends goes to.
pub struct Chromium {
    binary: PathBuf,
    profile: tempfile::TempDir,
    proxy: String,
    seen: Arc<Mutex<Vec<String>>>,
}

/// Hosts of Chromium's own background services (component updates, sign-in), which may be
/// called whatever the page does. Hosts a page could load from (fonts, libraries) are never the
/// browser's own.
const BROWSER_HOSTS: [&str; 3] = [".google.com", ".googleapis.com", ".gvt1.com"];
const CDN_HOSTS: [&str; 3] = [
    "fonts.googleapis.com",
    "ajax.googleapis.com",
    "storage.googleapis.com",
];

impl Chromium {
    /// A browser, or `None` (after saying so loudly) when `chromium` is not installed and this is
    /// not CI.
    ///
    /// # Panics
    /// Under CI without `chromium`.
    pub fn find() -> Option<Chromium> {
        let binary = installed("chromium")?;
        let (proxy, seen) = request_catcher();
        Some(Chromium {
            binary,
            profile: tempfile::tempdir().expect("a temp dir for the browser profile"),
            proxy,
            seen,
        })
    }

    /// Opens `page` (a local file) once: returns the DOM as its scripts left it, and saves a PNG
    /// screenshot of a `width`x`height` window at `screenshot`.
    ///
    /// # Panics
    /// When Chromium fails.
    pub fn open(&self, page: &Path, screenshot: &Path, (width, height): (u32, u32)) -> String {
        let out = std::process::Command::new(&self.binary)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-extensions",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-features=NetworkTimeServiceQuerying,OptimizationHints,MediaRouter,Translate",
                "--disable-default-apps",
                "--disable-sync",
                "--disable-breakpad",
                "--no-first-run",
                "--hide-scrollbars",
                "--dump-dom",
            ])
            .arg(format!("--screenshot={}", screenshot.display()))
            .arg(format!("--window-size={width},{height}"))
            .arg(format!("--user-data-dir={}", self.profile.path().display()))
            .arg(format!("--proxy-server=http://{}", self.proxy))
            .arg("--proxy-bypass-list=<-loopback>")
            .arg(format!("file://{}", page.display()))
            .stdin(std::process::Stdio::null())
            .output()
            .expect("run chromium");
        assert!(
            out.status.success(),
            "chromium failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The first line of every request sent so far that was not one of Chromium's own background
    /// calls: what the pages asked for. (The browser's own are said on stderr.)
    pub fn page_requests(&self) -> Vec<String> {
        let seen = self.seen.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let (browser, page): (Vec<_>, Vec<_>) = seen.into_iter().partition(|line| {
            let host = line.split_whitespace().nth(1).unwrap_or_default();
            let host = host
                .trim_start_matches("http://")
                .split(['/', ':'])
                .next()
                .unwrap_or_default();
            BROWSER_HOSTS.iter().any(|d| host.ends_with(d)) && !CDN_HOSTS.contains(&host)
        });
        if !browser.is_empty() {
            eprintln!("Chromium's own requests, not the page's: {browser:?}");
        }
        page
    }
}

/// A proxy that answers nothing and notes the first line of every request sent to it.
fn request_catcher() -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the catching proxy");
    let addr = listener
        .local_addr()
        .expect("the catching proxy's address")
        .to_string();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { return };
            let mut line = String::new();
            let _ = std::io::BufReader::new(&conn).read_line(&mut line);
            log.lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(line.trim().to_string());
            let _ = (&conn).write_all(b"HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\n\r\n");
        }
    });
    (addr, seen)
}
