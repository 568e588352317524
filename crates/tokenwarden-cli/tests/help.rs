//! `--help` and `completions` on the built binary: every command's help is one screen ending with
//! examples, carries the README's exit-status table, and says where connection options go; bash
//! completions.

mod common;

use common::{Sandbox, run};
use tokenwarden_sim::{DEFAULT_CLIENT_ID, SimConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completions_for_bash() {
    let sb = Sandbox::start(SimConfig::default()).await;
    let r = run(sb.bare(), &["completions", "bash"]).await;
    r.ok();
    assert!(
        r.stdout.contains("_tokenwarden()"),
        "{}",
        &r.stdout[..200.min(r.stdout.len())]
    );
    assert!(r.stdout.contains("complete -F"));
    assert!(r.stdout.contains("--client-secret-file"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_command_help_is_one_screen_ending_with_examples() {
    let sb = Sandbox::start(SimConfig::default()).await;
    // (command, takes connection options)
    let commands: [(&[&str], bool); 14] = [
        (&[], true),
        (&["token"], true),
        (&["check"], true),
        (&["request"], true),
        (&["paginate"], true),
        (&["export", "conversations"], true),
        (&["batch"], true),
        (&["config"], true),
        (&["login"], true),
        (&["logout"], true),
        (&["whoami"], true),
        (&["sim"], false),
        (&["demo"], false),
        (&["completions"], false),
    ];
    for (c, connected) in commands {
        let mut args = c.to_vec();
        args.push("--help");
        let what = args.join(" ");
        let r = run(sb.bare(), &args).await;
        r.ok();
        let help = &r.stdout;
        let lines = help.lines().count();
        assert!(lines <= 60, "`{what}`: {lines} lines\n{help}");
        // Compact: -h and --help are the same page, one line per option.
        let short = run(sb.bare(), &[c, &["-h"]].concat()).await;
        assert_eq!(&short.stdout, help, "`{what}` differs from -h");
        let examples = help
            .find("\nExamples:\n")
            .unwrap_or_else(|| panic!("`{what}` has no examples:\n{help}"));
        let n_examples = help[examples..]
            .lines()
            .filter(|l| l.starts_with("  tokenwarden ") || l.contains(" tokenwarden "))
            .count();
        assert!(n_examples >= 1, "`{what}`:\n{help}");
        let options = help.find("\nOptions:\n").expect("Options heading");
        let output = help.find("\nOutput:\n").expect("Output heading");
        if connected {
            // The command's own options, then the shared connection options, then examples.
            let connection = help
                .find("\nConnection:\n")
                .unwrap_or_else(|| panic!("`{what}` has no Connection heading:\n{help}"));
            assert!(
                options < connection && connection < output && output < examples,
                "{help}"
            );
            let own = &help[options..connection];
            assert!(!own.contains("--client-id"), "`{what}`: {own}");
            assert!(help[connection..output].contains("--client-id"), "{help}");
        } else {
            assert!(!help.contains("Connection:"), "`{what}`:\n{help}");
            assert!(!help.contains("--client-id"), "`{what}`:\n{help}");
            assert!(options < output && output < examples, "{help}");
        }
        // Examples are copied and pasted: never wrapped, even on a wide terminal.
        let mut wide = sb.bare();
        wide.env("COLUMNS", "300");
        let wide = run(wide, &args).await;
        let at = wide.stdout.find("\nExamples:\n").unwrap();
        for line in wide.stdout[at..]
            .lines()
            .skip(2)
            .take_while(|l| !l.ends_with(':'))
        {
            assert!(
                line.len() <= 100,
                "`{what}`: an example over 100 columns: {line}"
            );
        }
    }
    let r = run(sb.bare(), &["--help"]).await;
    // The table is the README's.
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
    for phrase in [
        "a bad value in the environment or a profile",
        "interrupted (Ctrl-C, SIGTERM)",
        "failed (an HTTP error after retries; the rest completed)",
    ] {
        assert!(readme.contains(phrase), "README: {phrase}");
        let flat = r.stdout.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(flat.contains(phrase), "--help: {phrase}\n{}", r.stdout);
    }
    assert!(
        r.stdout
            .contains("Exit status:\n  0    everything succeeded"),
        "{}",
        r.stdout
    );
    // Connection options go before or after the command name, except for the commands that
    // call no API.
    let mut cmd = sb.tw();
    cmd.args(["--client-id", DEFAULT_CLIENT_ID]);
    run(cmd, &["check"]).await.ok();
    run(sb.tw(), &["check", "--client-id", DEFAULT_CLIENT_ID])
        .await
        .ok();
    let r = run(sb.bare(), &["sim", "--client-id", "x"]).await;
    r.expect_code(2);
    let r = run(sb.bare(), &["--client-id", "x", "sim"]).await;
    r.expect_code(2);
    assert!(
        r.stderr
            .contains("takes no connection options: drop --client-id"),
        "{}",
        r.stderr
    );
}
