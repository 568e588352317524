//! Bad client credentials on the built binary: a wrong secret stops `check` at once with exit 3
//! and says which credentials were used (never the secret), and a secret too short to scrub is
//! said so.

mod common;

use common::{Sandbox, assert_wrong_secret_refused, run};
use tokenwarden_sim::{DEFAULT_CLIENT_ID, SimConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_secret_stops_check_fast_with_exit_3() {
    let sb = Sandbox::start(SimConfig::default()).await;
    let r = run(sb.tw_with_secret("not-the-secret"), &["check"]).await;
    assert_wrong_secret_refused(&r, &sb, "not-the-secret");
    assert!(
        r.stderr.contains(&format!(
            "client id \"{DEFAULT_CLIENT_ID}\" (from GENESYSCLOUD_OAUTHCLIENT_ID) and the client secret from GENESYSCLOUD_OAUTHCLIENT_SECRET"
        )),
        "says where the credentials came from: {}",
        r.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regression_a_client_secret_too_short_to_scrub_is_said_so() {
    // Secrets under MIN_SECRET_LEN were silently never scrubbed.
    let sb = Sandbox::start(SimConfig::default()).await;
    let r = run(sb.tw_with_secret("s3c"), &["check"]).await;
    r.expect_code(3);
    assert!(r.stderr.contains("cannot be scrubbed"), "{}", r.stderr);
    let r = run(sb.tw(), &["check"]).await;
    r.ok();
    assert!(!r.stderr.contains("cannot be scrubbed"), "{}", r.stderr);
}
