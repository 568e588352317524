//! Configuration on the built binary: the precedence as `tokenwarden config` shows it, the files
//! at their usual places, and the messages that point at the fix. (Every pair of sources of every
//! setting is checked in the unit tests of `src/config`; here, the wiring and the regressions.)

mod common;

use common::*;
use serde_json::Value;
use std::path::PathBuf;
use tokenwarden_sim::{DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, SimConfig};
use tokenwarden_test_support::chmod as set_mode;

/// Writes tokenwarden's config file where it is looked for by default, mode 0600.
fn write_tw_config(sb: &Sandbox, text: &str) -> PathBuf {
    let dir = sb.path("config").join("tokenwarden");
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join("config.toml");
    std::fs::write(&p, text).unwrap();
    set_mode(&p, 0o600);
    p
}

/// Writes the gc CLI's config file where it is looked for.
fn write_gc_config(sb: &Sandbox, text: &str) -> PathBuf {
    let dir = sb.path("home").join(".gc");
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join("config.toml");
    std::fs::write(&p, text).unwrap();
    p
}

/// A `[default]` profile with the simulator's token URL and client credentials.
fn sim_profile(sb: &Sandbox) -> String {
    format!(
        "[default]\ntoken_url = \"{}\"\nclient_id = \"{DEFAULT_CLIENT_ID}\"\nclient_secret = \"{DEFAULT_CLIENT_SECRET}\"\n",
        sb.sim.token_url()
    )
}

async fn config_json(cmd: std::process::Command) -> (Value, Run) {
    let r = run(cmd, &["config", "--json"]).await;
    let v = serde_json::from_str(&r.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}\n{}", r.stdout, r.stderr));
    (v, r)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_shows_each_setting_its_source_and_what_it_overrides_never_a_secret() {
    let sb = Sandbox::start(SimConfig::default()).await;
    write_tw_config(
        &sb,
        "[default]\nregion = \"eu-central-1\"\nclient_id = \"id-tw\"\nclient_secret = \"secret-in-tw-file\"\n",
    );
    write_gc_config(
        &sb,
        "[DEFAULT]\nenvironment = \"mypurecloud.jp\"\nclient_credentials = \"id-gc\"\nclient_secret = \"secret-in-gc-file\"\n",
    );
    let mut cmd = sb.bare();
    cmd.env("GENESYSCLOUD_REGION", "us-west-2")
        .env("GENESYSCLOUD_ACCESS_TOKEN", "access-token-in-env")
        .args(["--client-id", "id-flag"]);
    let (v, r) = config_json(cmd).await;
    r.ok();
    let s = &v["settings"];
    assert_eq!(s["region"]["value"], "us-west-2");
    assert_eq!(s["region"]["source"], "GENESYSCLOUD_REGION");
    let overridden: Vec<&str> = s["region"]["overridden"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["value"].as_str().unwrap())
        .collect();
    assert_eq!(overridden, ["eu-central-1", "mypurecloud.jp"]);
    assert_eq!(
        s["token_url"]["value"],
        "https://login.usw2.pure.cloud/oauth/token"
    );
    assert_eq!(s["token_url"]["source"], "region, from GENESYSCLOUD_REGION");
    assert_eq!(s["client_id"]["value"], "id-flag");
    assert_eq!(s["client_id"]["source"], "--client-id");
    assert_eq!(s["client_secret"]["value"], "[set]");
    assert!(
        s["client_secret"]["source"]
            .as_str()
            .unwrap()
            .starts_with("client_secret in profile 'default' in "),
        "{v}"
    );
    assert_eq!(s["access_token"]["value"], "[set]");
    assert!(
        s["access_token"]["note"]
            .as_str()
            .unwrap()
            .starts_with("not used")
    );
    assert_eq!(v["profile"]["name"], "default");
    assert_eq!(v["config_file"]["exists"], true);
    assert_eq!(v["gc_config_file"]["exists"], true);
    assert_eq!(v["usable"], true);

    // The text table says the same, and no secret appears in either form.
    let mut cmd = sb.bare();
    cmd.env("GENESYSCLOUD_REGION", "us-west-2")
        .env("GENESYSCLOUD_ACCESS_TOKEN", "access-token-in-env")
        .args(["--client-id", "id-flag"]);
    let t = run(cmd, &["config"]).await;
    t.ok();
    assert!(
        t.stdout
            .lines()
            .any(|l| l.starts_with("region ") && l.ends_with("GENESYSCLOUD_REGION")),
        "{}",
        t.stdout
    );
    assert!(
        t.stdout
            .contains("overrides mypurecloud.jp from environment in gc profile 'DEFAULT'"),
        "{}",
        t.stdout
    );
    for out in [r.all_output(), t.all_output()] {
        for secret in [
            "secret-in-tw-file",
            "secret-in-gc-file",
            "access-token-in-env",
        ] {
            assert!(!out.contains(secret), "{secret} shown:\n{out}");
        }
    }
}

/// A profile's `token_url` used to beat `GENESYSCLOUD_REGION`, against the stated precedence.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regression_the_environment_region_beats_a_profile_token_url() {
    let sb = Sandbox::start(SimConfig::default()).await;
    write_tw_config(
        &sb,
        &format!(
            "[default]\ntoken_url = \"{}\"\napi_base = \"{}\"\nclient_id = \"{DEFAULT_CLIENT_ID}\"\nclient_secret = \"{DEFAULT_CLIENT_SECRET}\"\n",
            sb.sim.token_url(),
            sb.sim.base_url()
        ),
    );
    let mut cmd = sb.bare();
    cmd.env("GENESYSCLOUD_REGION", "eu-west-1");
    let (v, r) = config_json(cmd).await;
    r.ok();
    assert_eq!(
        v["settings"]["token_url"]["value"],
        "https://login.mypurecloud.ie/oauth/token"
    );
    assert_eq!(
        v["settings"]["api_base"]["value"],
        "https://api.mypurecloud.ie"
    );

    // Without the variable the profile's URLs are used, and reach the simulator.
    run(sb.bare(), &["check"]).await.ok();
    // A flag beats the variable the other way round.
    let mut cmd = sb.bare();
    cmd.env("GENESYSCLOUD_REGION", "eu-west-1")
        .args(["--token-url", &sb.sim.token_url()]);
    run(cmd, &["check"]).await.ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_region_variable_does_not_matter_when_both_urls_are_given() {
    let sb = Sandbox::start(SimConfig::default()).await;
    let mut cmd = sb.tw();
    cmd.env("GENESYSCLOUD_REGION", "not-a-region");
    run(cmd, &["check"]).await.ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_point_at_the_fix() {
    let sb = Sandbox::start(SimConfig::default()).await;

    // A mistyped region: one short line with the near ones.
    let r = run(sb.bare(), &["--region", "eu-west-9", "check"]).await;
    r.expect_code(2);
    assert_eq!(
        r.stderr,
        "error: unknown region 'eu-west-9'; did you mean eu-west-1 or eu-west-2?\n"
    );

    // --config names a file that is not there: say so (not "profile not found").
    let r = run(sb.bare(), &["--config", "missing.toml", "check"]).await;
    r.expect_code(2);
    assert_eq!(
        r.stderr,
        "error: config file missing.toml (--config) does not exist\n"
    );

    // Not a URL: a clear error, not a panic.
    let r = run(sb.bare(), &["--token-url", "not-a-url", "check"]).await;
    r.expect_code(2);
    assert!(
        r.stderr
            .starts_with("error: token URL 'not-a-url' (--token-url) is not usable"),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("panicked"), "{}", r.stderr);

    // Plain http off loopback: the refusal names the flag that allows it.
    let r = run(
        sb.bare(),
        &["--token-url", "http://tokens.example/oauth/token", "check"],
    )
    .await;
    r.expect_code(2);
    assert!(
        r.stderr
            .contains("hint: use https, or add --allow-insecure-http"),
        "{}",
        r.stderr
    );

    // A typo in a profile: a warning with the key meant.
    let cfg = sb.write(
        "typo.toml",
        &format!(
            "[default]\nregoin = \"eu-west-1\"\ntoken_url = \"{}\"\n",
            sb.sim.token_url()
        ),
    );
    let mut cmd = sb.tw();
    cmd.args(["--config", cfg.to_str().unwrap()]);
    let r = run(cmd, &["check"]).await;
    r.ok();
    assert!(
        r.stderr
            .contains("line 2, column 1: unknown key 'regoin' in profile 'default'")
            && r.stderr.contains("did you mean 'region'?"),
        "{}",
        r.stderr
    );
}

/// A TOML syntax error used to print the offending line, and so the secret on it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regression_a_broken_config_file_is_reported_by_line_and_column_without_the_line() {
    let sb = Sandbox::start(SimConfig::default()).await;
    let cfg = sb.write(
        "broken.toml",
        "[default]\nclient_id = \"x\"\nclient_secret = \"hunter2-the-real-secret\n",
    );
    let mut cmd = sb.tw();
    cmd.args(["--config", cfg.to_str().unwrap()]);
    let r = run(cmd, &["check"]).await;
    r.expect_code(3);
    assert!(
        r.stderr.contains("is not valid TOML: line 3, column"),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("hunter2"), "{}", r.stderr);
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_secret_on_the_command_line_is_warned_about_even_with_quiet() {
    let sb = Sandbox::start(SimConfig::default()).await;
    let mut cmd = sb.connected();
    cmd.env("GENESYSCLOUD_OAUTHCLIENT_ID", DEFAULT_CLIENT_ID)
        .args(["-q", "--client-secret", DEFAULT_CLIENT_SECRET]);
    let r = run(cmd, &["check"]).await;
    r.ok();
    assert!(
        r.stderr
            .starts_with("warning: --client-secret on the command line is visible to other users"),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains(DEFAULT_CLIENT_SECRET), "{}", r.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_file_others_can_read_or_change_is_warned_about_even_with_quiet() {
    let sb = Sandbox::start(SimConfig::default()).await;
    let p = write_tw_config(&sb, &sim_profile(&sb));
    let r = run(sb.bare(), &["check"]).await;
    r.ok();
    assert_eq!(r.stderr, "", "0600: nothing to say");
    set_mode(&p, 0o644);
    let r = run(sb.bare(), &["-q", "check"]).await;
    r.ok();
    assert!(
        r.stderr
            .contains("other users can read it (mode 644); run: chmod 600"),
        "{}",
        r.stderr
    );
    // Writable by anyone: someone could point token_url at their server and get the secret.
    set_mode(&p, 0o666);
    let r = run(sb.bare(), &["-q", "check"]).await;
    r.ok();
    assert!(
        r.stderr.contains("can be changed by other users"),
        "{}",
        r.stderr
    );
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regression_group_writable_configs_open_directories_and_exposed_secret_files_are_warned_about()
 {
    // Only world-writable files were caught: not a group-writable one, not one in a directory
    // others can rename entries of, not a secret file or the gc CLI's file readable by others.
    let sb = Sandbox::start(SimConfig::default()).await;
    let p = write_tw_config(&sb, &sim_profile(&sb));
    let changeable = |r: &Run| r.stderr.contains("can be changed by other users");
    set_mode(&p, 0o620);
    let r = run(sb.bare(), &["-q", "check"]).await;
    assert!(changeable(&r), "group-writable: {}", r.stderr);
    set_mode(&p, 0o600);
    let dir = p.parent().unwrap();
    set_mode(dir, 0o777);
    let r = run(sb.bare(), &["-q", "check"]).await;
    assert!(
        changeable(&r) && r.stderr.contains("lets other users replace it"),
        "{}",
        r.stderr
    );
    set_mode(dir, 0o1777);
    let r = run(sb.bare(), &["check"]).await;
    assert_eq!(r.stderr, "", "a sticky directory is fine");
    set_mode(dir, 0o700);

    // A secret file readable by others.
    let secret = sb.write("secret.txt", &format!("{DEFAULT_CLIENT_SECRET}\n"));
    set_mode(&secret, 0o644);
    let mut c = sb.connected();
    c.env("GENESYSCLOUD_OAUTHCLIENT_ID", DEFAULT_CLIENT_ID);
    let r = run(
        c,
        &[
            "-q",
            "--client-secret-file",
            secret.to_str().unwrap(),
            "check",
        ],
    )
    .await;
    r.ok();
    assert!(
        r.stderr.contains("other users can read it (mode 644)"),
        "{}",
        r.stderr
    );

    // The gc CLI's file holding a client secret.
    std::fs::remove_file(&p).unwrap();
    let gc = write_gc_config(
        &sb,
        &format!(
            "[DEFAULT]\nclient_credentials = \"{DEFAULT_CLIENT_ID}\"\nclient_secret = \"{DEFAULT_CLIENT_SECRET}\"\n"
        ),
    );
    set_mode(&gc, 0o644);
    let r = run(sb.connected(), &["-q", "check"]).await;
    assert!(
        r.stderr
            .contains(&format!("{} holds a secret", gc.display())),
        "{}",
        r.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_secret_from_stdin_cannot_also_be_the_request_body() {
    let sb = Sandbox::start(SimConfig::default()).await;
    let mut cmd = sb.connected();
    cmd.env("GENESYSCLOUD_OAUTHCLIENT_ID", DEFAULT_CLIENT_ID)
        .args([
            "--client-secret-stdin",
            "request",
            "POST",
            "/api/v2/sim/echo",
            "--data",
            "@-",
        ]);
    let r = run_with_stdin(cmd, Some(format!("{DEFAULT_CLIENT_SECRET}\n{{}}\n"))).await;
    r.expect_code(2);
    assert!(
        r.stderr.contains("already gave the client secret"),
        "{}",
        r.stderr
    );
    assert_eq!(sb.sim.journal_counters().api_requests, 0, "nothing sent");
}

/// Reading the secret from a pipe that never ends used to block the thread that waits for
/// Ctrl-C: the interrupt went unseen until the pipe closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regression_ctrl_c_while_the_secret_is_awaited_on_stdin_exits_130() {
    let sb = Sandbox::start(SimConfig::default()).await;
    let mut cmd = sb.connected();
    cmd.env("GENESYSCLOUD_OAUTHCLIENT_ID", DEFAULT_CLIENT_ID)
        .args(["-vv", "--client-secret-stdin"])
        .stdin(std::process::Stdio::piped());
    let mut child = spawn(cmd, &["check"]);
    // The secret never comes: stdin stays open, silent, until the command has ended (or, as a
    // last resort against a hang, for 10 s: then the command fails with "no secret", not 130).
    let stdin = child.stdin.take().unwrap();
    let (ended, ended_rx) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || {
        let _stdin = stdin;
        let _ = ended_rx.recv_timeout(std::time::Duration::from_secs(10));
    });
    let r = tokio::task::spawn_blocking(move || {
        use std::io::BufRead as _;
        let mut err = std::io::BufReader::new(child.stderr.take().unwrap());
        let mut line = String::new();
        while !line.contains("reading the client secret from standard input") {
            line.clear();
            assert!(err.read_line(&mut line).unwrap() > 0, "no such log line");
        }
        interrupt(child)
    })
    .await
    .unwrap();
    let _ = ended.send(());
    r.expect_code(130);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regression_a_typo_that_breaks_the_config_still_gets_its_did_you_mean() {
    let sb = Sandbox::start(SimConfig::default()).await;
    let cfg = sb.write(
        "typo.toml",
        &format!("[default]\ntoken_ur = \"{}\"\n", sb.sim.token_url()),
    );
    let mut cmd = sb.bare();
    cmd.args(["--config", cfg.to_str().unwrap()])
        .env("GENESYSCLOUD_OAUTHCLIENT_ID", DEFAULT_CLIENT_ID)
        .env("GENESYSCLOUD_OAUTHCLIENT_SECRET", DEFAULT_CLIENT_SECRET);
    let r = run(cmd, &["token"]).await;
    r.expect_code(3);
    let warning = r
        .stderr
        .find("did you mean 'token_url'?")
        .unwrap_or_else(|| panic!("{}", r.stderr));
    let error = r.stderr.find("error: no region or token URL").unwrap();
    assert!(warning < error, "the cause comes first: {}", r.stderr);
    // The file is named once, at the start.
    assert_eq!(r.stderr.matches("typo.toml").count(), 1, "{}", r.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regression_a_bad_region_is_said_once_with_one_hint_and_config_exits_3() {
    let sb = Sandbox::start(SimConfig::default()).await;
    for json in [false, true] {
        let mut cmd = sb.bare();
        cmd.env("GENESYSCLOUD_REGION", "bogus");
        let mut args = vec!["config"];
        if json {
            args.push("--json");
        }
        let r = run(cmd, &args).await;
        r.expect_code(3);
        let all = r.all_output();
        assert_eq!(all.matches("hint: regions:").count(), 1, "{all}");
        assert_eq!(all.matches("error:").count(), 1, "{all}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regression_a_password_in_a_url_is_never_shown() {
    // `https://svc:Pr0xyPassw0rd@login...` was echoed by `config` and in the error.
    let sb = Sandbox::start(SimConfig::default()).await;
    let url = "https://svc:Pr0xyPassw0rd@login.mypurecloud.ie/oauth/token";
    for args in [
        &["--token-url", url, "config"][..],
        &["--token-url", url, "--log-format", "json", "config"][..],
        &[
            "--token-url",
            url,
            "--client-id",
            "x",
            "--client-secret",
            "abcdefgh",
            "token",
        ][..],
        &[
            "--api-base",
            "https://svc:Pr0xyPassw0rd@api.mypurecloud.ie",
            "config",
        ][..],
    ] {
        let r = run(sb.bare(), args).await;
        assert!(
            !r.all_output().contains("Pr0xyPassw0rd"),
            "{args:?}: {}",
            r.all_output()
        );
        assert!(
            r.all_output().contains("svc:****@"),
            "{args:?}: {}",
            r.all_output()
        );
    }
}

// ---- precedence on a real run ---------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_profile_in_a_config_file_reaches_the_simulator() {
    let sb = Sandbox::start(SimConfig::default()).await;
    let profile = format!(
        "[default]\nregion = \"eu-west-1\"\n\n[sim]\ntoken_url = \"{}\"\napi_base = \"{}\"\nclient_id = \"{DEFAULT_CLIENT_ID}\"\nclient_secret = \"{DEFAULT_CLIENT_SECRET}\"\n",
        sb.sim.token_url(),
        sb.sim.base_url()
    );
    let cfg = sb.write("tw.toml", &profile);
    let mut cmd = sb.bare();
    cmd.args(["--config", cfg.to_str().unwrap(), "--profile", "sim"]);
    let r = run(cmd, &["check"]).await;
    r.ok();
    assert!(r.stdout.contains(DEFAULT_CLIENT_ID), "{}", r.stdout);

    // The default location (<XDG_CONFIG_HOME>/tokenwarden/config.toml) and -p.
    let dir = sb.path("config").join("tokenwarden");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("config.toml"), &profile).unwrap();
    run(sb.bare(), &["-p", "sim", "check"]).await.ok();

    // Flags beat the profile: --token-url to the simulator over a dead profile URL.
    let dead = profile.replace(&sb.sim.token_url(), "http://127.0.0.1:9/oauth/token");
    let cfg = sb.write("dead.toml", &dead);
    let mut cmd = sb.bare();
    cmd.args([
        "--config",
        cfg.to_str().unwrap(),
        "-p",
        "sim",
        "--token-url",
        &sb.sim.token_url(),
    ]);
    run(cmd, &["check"]).await.ok();

    // The environment beats the profile: a wrong secret in the profile, the right one in env.
    let wrong = profile.replace(
        &format!("client_secret = \"{DEFAULT_CLIENT_SECRET}\""),
        "client_secret = \"stale\"",
    );
    let cfg = sb.write("wrong.toml", &wrong);
    let mut cmd = sb.bare();
    cmd.args(["--config", cfg.to_str().unwrap(), "-p", "sim"]);
    run(cmd, &["check"]).await.expect_code(3);
    let mut cmd = sb.bare();
    cmd.args(["--config", cfg.to_str().unwrap(), "-p", "sim"])
        .env("GENESYSCLOUD_OAUTHCLIENT_SECRET", DEFAULT_CLIENT_SECRET);
    run(cmd, &["check"]).await.ok();

    // An unknown profile named on the command line is a usage error that names it and the
    // profiles there are.
    let mut cmd = sb.bare();
    cmd.args(["--config", cfg.to_str().unwrap(), "-p", "nope"]);
    let r = run(cmd, &["check"]).await;
    r.expect_code(2);
    assert!(
        r.stderr.contains("profile 'nope' not found"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("profiles there: default, sim"),
        "{}",
        r.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flags_beat_the_environment_and_every_secret_source_works() {
    let sb = Sandbox::start(SimConfig::default()).await;

    // --client-id beats GENESYSCLOUD_OAUTHCLIENT_ID.
    let mut cmd = sb.connected();
    cmd.env("GENESYSCLOUD_OAUTHCLIENT_ID", "someone-else")
        .env("GENESYSCLOUD_OAUTHCLIENT_SECRET", DEFAULT_CLIENT_SECRET);
    let r = run(cmd, &["--client-id", DEFAULT_CLIENT_ID, "check"]).await;
    r.ok();
    assert!(!r.stderr.contains("process list"), "{}", r.stderr);

    // --client-secret beats the environment, with a warning about the process list.
    let mut cmd = sb.tw_with_secret("stale");
    cmd.args(["--client-secret", DEFAULT_CLIENT_SECRET]);
    let r = run(cmd, &["check"]).await;
    r.ok();
    assert!(r.stderr.contains("process list"), "{}", r.stderr);
    assert!(!r.stderr.contains(DEFAULT_CLIENT_SECRET), "{}", r.stderr);

    // --client-secret-file.
    let f = sb.write("secret.txt", &format!("{DEFAULT_CLIENT_SECRET}\n"));
    let mut cmd = sb.tw_with_secret("stale");
    cmd.args(["--client-secret-file", f.to_str().unwrap()]);
    let r = run(cmd, &["check"]).await;
    r.ok();
    assert!(!r.stderr.contains("process list"), "{}", r.stderr);

    // --client-secret-stdin.
    let mut cmd = sb.connected();
    cmd.env("GENESYSCLOUD_OAUTHCLIENT_ID", DEFAULT_CLIENT_ID)
        .args(["--client-secret-stdin", "check"]);
    let r = run_with_stdin(cmd, Some(format!("{DEFAULT_CLIENT_SECRET}\n"))).await;
    r.ok();

    // Empty sources are configuration errors.
    let mut cmd = sb.connected();
    cmd.env("GENESYSCLOUD_OAUTHCLIENT_ID", DEFAULT_CLIENT_ID)
        .args(["--client-secret-stdin", "check"]);
    run_with_stdin(cmd, Some(String::new()))
        .await
        .expect_code(3);
    let empty = sb.write("empty.txt", "");
    let mut cmd = sb.connected();
    cmd.env("GENESYSCLOUD_OAUTHCLIENT_ID", DEFAULT_CLIENT_ID)
        .args(["--client-secret-file", empty.to_str().unwrap()]);
    run(cmd, &["check"]).await.expect_code(3);

    // No credentials at all: a configuration error that says what to set.
    let r = run(sb.connected(), &["check"]).await;
    r.expect_code(3);
    assert!(
        r.stderr.contains("GENESYSCLOUD_OAUTHCLIENT_ID"),
        "{}",
        r.stderr
    );

    let j = sb.sim.journal_counters();
    assert_eq!(j.token_bad_credentials, 0, "{j:?}");
    // One token for the four that succeeded: each found the first one's token in the cache,
    // which it would not have served under another client id or secret (the cache key).
    assert_eq!(j.tokens_issued, 1);
}
