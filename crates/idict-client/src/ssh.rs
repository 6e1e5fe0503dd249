//! `ssh://[user@]host[:port]/RUN`: a run on another machine (a cluster's
//! compute or login node), reached through the system `ssh` running
//! `idict bridge RUN` there. The bridge finds the run as `idict` would on
//! that machine, answers with one line saying which run it reached and its
//! tokens, then passes bytes between its stdin/stdout and the run; gRPC
//! goes over the `ssh` child's pipes. So `~/.ssh/config`, agents, ProxyJump
//! and keys work as the user set them up, no port is forwarded, and the
//! tokens stay in this process's memory.
//!
//! `IDICT_SSH_COMMAND` replaces `ssh` and its options (as `GIT_SSH_COMMAND`
//! does for git); `IDICT_REMOTE` replaces the remote `idict` (a path, or a
//! command such as `env IDICT_RUNS_DIR=/scratch/runs idict`).

use super::ClientError;
use serde::{Deserialize, Serialize};
use std::pin::Pin;
use std::process::Stdio;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, BufReader, ReadBuf};
use tokio::process::{Child, ChildStdin, ChildStdout};

/// Where an `ssh://` target points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshTarget {
    pub user: Option<String>,
    pub host: String,
    pub port: Option<u16>,
    /// The run on that host (name, pid, address or run file); empty for a
    /// host alone (`idict ls ssh://host`).
    pub run: String,
}

impl SshTarget {
    /// `[user@]host`, as ssh takes it.
    pub fn destination(&self) -> String {
        match &self.user {
            Some(u) => format!("{u}@{}", self.host),
            None => self.host.clone(),
        }
    }

    /// The `ssh://` address again.
    pub fn url(&self) -> String {
        let port = self.port.map(|p| format!(":{p}")).unwrap_or_default();
        format!("ssh://{}{port}/{}", self.destination(), self.run)
    }
}

fn bad(url: &str, why: &str) -> ClientError {
    ClientError::BadAddress(format!(
        "{url}: {why} (expected ssh://[user@]host[:port]/RUN)"
    ))
}

/// Parses `ssh://[user@]host[:port][/RUN]`.
pub fn parse(url: &str) -> Result<SshTarget, ClientError> {
    let rest = url
        .strip_prefix("ssh://")
        .ok_or_else(|| bad(url, "not an ssh:// address"))?;
    let (authority, run) = rest.split_once('/').unwrap_or((rest, ""));
    let (user, host_port) = match authority.rsplit_once('@') {
        Some((u, h)) if !u.is_empty() => (Some(u.to_string()), h),
        Some(_) => return Err(bad(url, "an empty user name")),
        None => (None, authority),
    };
    let (host, port) = match host_port.strip_prefix('[') {
        // [v6]:port
        Some(v6) => {
            let (h, after) = v6
                .split_once(']')
                .ok_or_else(|| bad(url, "an unclosed '['"))?;
            (h, after.strip_prefix(':'))
        }
        None => match host_port.split_once(':') {
            Some((_, p)) if p.contains(':') => {
                return Err(bad(url, "an IPv6 address not in brackets ([::1])"));
            }
            Some((h, p)) => (h, Some(p)),
            None => (host_port, None),
        },
    };
    let port = match port {
        Some(p) => Some(
            p.parse::<u16>()
                .ok()
                .filter(|&p| p > 0)
                .ok_or_else(|| bad(url, "a port that is not a number from 1 to 65535"))?,
        ),
        None => None,
    };
    // Whatever reaches ssh's command line must not read as an option, and
    // host and user names keep to what names are made of: ssh substitutes
    // them into ProxyCommand lines, which a shell reads.
    let plain = |s: &str, extra: &[char]| {
        s.chars().all(|c| {
            c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') || extra.contains(&c)
        })
    };
    if host.is_empty() || host.starts_with('-') || !plain(host, &[':', '%']) {
        return Err(bad(
            url,
            "a host name with characters host names do not have",
        ));
    }
    if let Some(u) = &user
        && (u.starts_with('-') || !plain(u, &[]))
    {
        return Err(bad(
            url,
            "a user name with characters user names do not have",
        ));
    }
    Ok(SshTarget {
        user,
        host: host.to_string(),
        port,
        run: run.to_string(),
    })
}

/// What the bridge says first: the run it reached (or why it could not).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// 1 for this layout.
    pub idict_bridge: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub pid: u32,
    #[serde(default)]
    pub host: String,
    /// The run's address on its host.
    #[serde(default)]
    pub address: String,
    #[serde(default)]
    pub started_unix_ms: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observer_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub controller_token: Option<String>,
}

/// The longest first line a bridge may send.
const MAX_HELLO_BYTES: u64 = 64 << 10;
/// Stderr kept to explain a failure.
const MAX_STDERR_BYTES: u64 = 16 << 10;

/// How to start ssh and what to run on the far side.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SshOptions {
    /// The ssh command line; default `IDICT_SSH_COMMAND`, else `ssh`.
    pub ssh_command: Option<String>,
    /// The far side's idict; default `IDICT_REMOTE`, else `idict`.
    pub remote: Option<String>,
}

impl SshOptions {
    fn ssh_command(&self) -> String {
        self.ssh_command
            .clone()
            .or_else(|| std::env::var("IDICT_SSH_COMMAND").ok())
            .filter(|c| !c.trim().is_empty())
            .unwrap_or_else(|| "ssh".into())
    }

    fn remote(&self) -> String {
        self.remote
            .clone()
            .or_else(|| std::env::var("IDICT_REMOTE").ok())
            .filter(|c| !c.trim().is_empty())
            .unwrap_or_else(|| "idict".into())
    }
}

/// ssh to `t`, running `remote_args` with the far side's idict.
pub fn command(
    t: &SshTarget,
    remote_args: &[&str],
    opts: &SshOptions,
) -> Result<tokio::process::Command, ClientError> {
    let ssh = opts.ssh_command();
    let ssh = shlex::split(&ssh)
        .filter(|w| !w.is_empty())
        .ok_or_else(|| {
            ClientError::BadAddress(format!("IDICT_SSH_COMMAND is not a command line: {ssh}"))
        })?;
    let remote = opts.remote();
    // The remote command is one string that the remote shell splits: each
    // of our words quoted, IDICT_REMOTE as the user wrote it.
    let mut line = remote;
    for a in remote_args {
        let quoted = shlex::try_quote(a).map_err(|_| {
            ClientError::BadAddress(format!("a run name ssh cannot pass on: {a:?}"))
        })?;
        line.push(' ');
        line.push_str(&quoted);
    }
    let mut cmd = tokio::process::Command::new(&ssh[0]);
    cmd.args(&ssh[1..]);
    // No terminal: the bytes are gRPC, which a tty would translate.
    cmd.arg("-T");
    if let Some(p) = t.port {
        cmd.arg("-p").arg(p.to_string());
    }
    cmd.arg("--").arg(t.destination()).arg(line);
    Ok(cmd)
}

/// A bridged run: who it is, and the pipes to it.
pub(crate) struct Bridged {
    pub hello: Hello,
    pub stream: SshStream,
}

/// Starts `ssh ... idict bridge RUN` and reads the bridge's hello; a
/// failure says why (ssh missing, authentication, `idict` not on the
/// remote PATH, no such run).
pub(crate) async fn open(
    t: &SshTarget,
    timeout: Duration,
    opts: &SshOptions,
) -> Result<Bridged, ClientError> {
    // `--`: a run named like an option is still a run.
    let mut cmd = command(t, &["bridge", "--", &t.run], opts)?;
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let unreachable = |message: String| ClientError::Unreachable {
        address: t.url(),
        message,
    };
    let mut child = cmd.spawn().map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            unreachable(
                "no ssh command here: install OpenSSH's client, or set IDICT_SSH_COMMAND".into(),
            )
        } else {
            unreachable(format!("cannot start ssh: {e}"))
        }
    })?;
    let (Some(stdin), Some(stdout), Some(stderr)) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        return Err(unreachable("ssh's pipes could not be opened".into()));
    };
    // Stderr is read all along (a full pipe would stall ssh), keeping the
    // first bytes to explain a failure.
    let stderr_text = tokio::spawn(async move {
        let mut kept = Vec::new();
        let mut limited = stderr.take(MAX_STDERR_BYTES);
        let _ = limited.read_to_end(&mut kept).await;
        let mut rest = limited.into_inner();
        let _ = tokio::io::copy(&mut rest, &mut tokio::io::sink()).await;
        String::from_utf8_lossy(&kept).into_owned()
    });
    let mut reader = BufReader::new(stdout);
    let mut line = Vec::new();
    let read = tokio::time::timeout(
        timeout,
        (&mut reader)
            .take(MAX_HELLO_BYTES)
            .read_until(b'\n', &mut line),
    )
    .await;
    let hello = match read {
        Ok(Ok(n)) if n > 0 && line.ends_with(b"\n") => serde_json::from_slice::<Hello>(&line).ok(),
        Ok(_) => None,
        Err(_) => {
            return Err(unreachable(format!(
                "no answer from the far side within {} s",
                timeout.as_secs()
            )));
        }
    };
    let Some(hello) = hello.filter(|h| h.idict_bridge == 1) else {
        // ssh ended (or something else answered): say why, from its exit
        // code (waited for first: a killed ssh has none) and its stderr.
        let status = match tokio::time::timeout(Duration::from_secs(5), child.wait()).await {
            Ok(s) => Ok(s),
            Err(e) => {
                let _ = child.start_kill();
                Err(e)
            }
        };
        let stderr = tokio::time::timeout(Duration::from_secs(2), stderr_text)
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or_default();
        let code = status.ok().and_then(Result::ok).and_then(|s| s.code());
        return Err(unreachable(explain_failure(
            t,
            code,
            &stderr,
            &line,
            &opts.remote(),
        )));
    };
    if let Some(e) = hello.error {
        return Err(ClientError::RunNotFound(format!(
            "on {}: {}",
            t.host,
            idict_core::value::escape_controls(&e)
        )));
    }
    Ok(Bridged {
        hello,
        stream: SshStream {
            _child: child,
            read: reader,
            write: stdin,
        },
    })
}

/// Why ssh ended before the bridge answered, from its exit code and stderr.
fn explain_failure(
    t: &SshTarget,
    code: Option<i32>,
    stderr: &str,
    stdout: &[u8],
    remote: &str,
) -> String {
    let last = stderr
        .lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty())
        .unwrap_or_default();
    let last = idict_core::value::escape_controls(last);
    // ssh's own failures end it with 255; the remote shell's with 126/127.
    if code == Some(255) {
        let login = [
            "Permission denied (",
            "Authentication failed",
            "Too many authentication failures",
        ];
        if login.iter().any(|m| stderr.contains(m)) {
            return format!("ssh could not log in to {}: {last}", t.destination());
        }
        return format!("ssh could not reach {}: {last}", t.destination());
    }
    if code == Some(127)
        || stderr.contains("command not found")
        || stderr.contains("No such file or directory")
    {
        return format!(
            "'{remote}' is not on the PATH of {} (install idict there, or set IDICT_REMOTE to its path): {last}",
            t.host
        );
    }
    if code == Some(126) {
        return format!("'{remote}' cannot be run on {}: {last}", t.host);
    }
    if !stdout.is_empty() {
        // Not echoed: a bridge's answer carries tokens.
        return "the far side did not answer as `idict bridge` does: an older idict there, \
                or a login script that prints to stdout"
            .to_string();
    }
    if last.is_empty() {
        format!("ssh to {} ended (exit code {code:?})", t.destination())
    } else {
        format!("ssh to {} ended: {last}", t.destination())
    }
}

/// The ssh child's stdout and stdin as one byte stream; the child is killed
/// when the stream is dropped (the bridge then sees its stdin end).
pub struct SshStream {
    _child: Child,
    read: BufReader<ChildStdout>,
    write: ChildStdin,
}

impl AsyncRead for SshStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.read).poll_read(cx, buf)
    }
}

impl AsyncWrite for SshStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.write).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.write).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.write).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssh_addresses_parse_and_bad_ones_are_refused() {
        let t = parse("ssh://alice@login1:2222/heat").unwrap();
        assert_eq!(
            t,
            SshTarget {
                user: Some("alice".into()),
                host: "login1".into(),
                port: Some(2222),
                run: "heat".into()
            }
        );
        assert_eq!(t.destination(), "alice@login1");
        let t = parse("ssh://node17/12345").unwrap();
        assert_eq!((t.user, t.port, t.run.as_str()), (None, None, "12345"));
        let t = parse("ssh://[::1]:22/runs/heat-1.json").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.run.as_str()),
            ("::1", Some(22), "runs/heat-1.json")
        );
        assert_eq!(parse("ssh://cluster").unwrap().run, "");
        for bad in [
            "ssh:///heat",
            "ssh://-oProxyCommand=evil/heat",
            "ssh://host:0/heat",
            "ssh://host:99999/heat",
            "ssh://@host/heat",
            "ssh://-u@host/heat",
            "ssh://fe80::1/heat",
            "ssh://host$(id)/heat",
            "ssh://al%ice@host/heat",
            "ssh://ho st/heat",
            "http://host/heat",
        ] {
            assert!(
                matches!(parse(bad), Err(ClientError::BadAddress(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn the_command_passes_the_run_quoted_for_the_remote_shell() {
        let t = parse("ssh://alice@login1:2222/my run;rm -rf ~").unwrap();
        let cmd = command(&t, &["bridge", &t.run], &SshOptions::default()).unwrap();
        let args: Vec<String> = cmd
            .as_std()
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let n = args.len();
        assert_eq!(&args[n - 4..n - 1], ["2222", "--", "alice@login1"]);
        assert_eq!(args[n - 1], "idict bridge 'my run;rm -rf ~'");
        assert!(args.contains(&"-T".to_string()), "no tty: {args:?}");
    }
}
