//! `idict bridge`: the far side of `ssh://HOST/RUN`, gRPC over ssh's pipes.

use anyhow::Result;
use idict::client::ClientError;
use std::process::ExitCode;

/// The far side of `ssh://HOST/RUN` (see `idict::client::ssh`).
pub(crate) async fn bridge(run: &str) -> Result<ExitCode> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let say = |hello: &idict::client::ssh::Hello| -> Result<()> {
        let mut line = serde_json::to_vec(hello)?;
        line.push(b'\n');
        let mut out = std::io::stdout().lock();
        std::io::Write::write_all(&mut out, &line)?;
        std::io::Write::flush(&mut out)?;
        Ok(())
    };
    let refuse = |error: String| -> Result<ExitCode> {
        say(&idict::client::ssh::Hello {
            idict_bridge: 1,
            error: Some(error),
            ..Default::default()
        })?;
        Ok(ExitCode::FAILURE)
    };
    let target = match idict::client::resolve(run) {
        Ok(t) => t,
        // The near side says "run not found" itself.
        Err(ClientError::RunNotFound(m)) => return refuse(m),
        Err(e) => return refuse(e.to_string()),
    };
    let address = target.address.clone();
    if address.starts_with("ssh://") {
        return refuse("a bridge does not go on to another host: use ssh's ProxyJump".into());
    }
    if address.starts_with("https://") {
        return refuse(format!(
            "{address} is served over TLS, which a bridge does not pass: reach it at its address with its CA"
        ));
    }
    let (mut from_run, mut to_run): (
        Box<dyn tokio::io::AsyncRead + Unpin + Send>,
        Box<dyn tokio::io::AsyncWrite + Unpin + Send>,
    ) = if let Some(path) = address.strip_prefix("unix:") {
        #[cfg(unix)]
        {
            match tokio::net::UnixStream::connect(path.trim_start_matches("//")).await {
                Ok(s) => {
                    let (r, w) = s.into_split();
                    (Box::new(r), Box::new(w))
                }
                Err(e) => return refuse(format!("cannot reach the run at {address}: {e}")),
            }
        }
        #[cfg(not(unix))]
        {
            let _ = path;
            return refuse("Unix sockets are not reached on this platform".into());
        }
    } else {
        match tokio::net::TcpStream::connect(address.trim_start_matches("http://")).await {
            Ok(s) => {
                let _ = s.set_nodelay(true);
                let (r, w) = s.into_split();
                (Box::new(r), Box::new(w))
            }
            Err(e) => return refuse(format!("cannot reach the run at {address}: {e}")),
        }
    };
    let run_file = target.run.clone();
    say(&idict::client::ssh::Hello {
        idict_bridge: 1,
        error: None,
        name: run_file
            .as_ref()
            .map(|r| r.name.clone())
            .unwrap_or_default(),
        pid: run_file.as_ref().map_or(0, |r| r.pid),
        host: idict::runfile::host_name(),
        address: address.clone(),
        started_unix_ms: run_file.as_ref().map_or(0, |r| r.started_unix_ms),
        observer_token: run_file.as_ref().map(|r| r.observer_token.clone()),
        controller_token: run_file
            .as_ref()
            .map(|r| r.controller_token.clone())
            .or(target.token.clone()),
    })?;
    // Bytes both ways, each flushed as it comes (ssh passes them on).
    let upstream = async {
        let mut stdin = tokio::io::stdin();
        let mut buf = vec![0u8; 64 << 10];
        loop {
            let n = stdin.read(&mut buf).await?;
            if n == 0 {
                return to_run.shutdown().await;
            }
            to_run.write_all(&buf[..n]).await?;
        }
    };
    let downstream = async {
        let mut stdout = tokio::io::stdout();
        let mut buf = vec![0u8; 64 << 10];
        loop {
            let n = from_run.read(&mut buf).await?;
            if n == 0 {
                return Ok::<(), std::io::Error>(());
            }
            stdout.write_all(&buf[..n]).await?;
            stdout.flush().await?;
        }
    };
    // Either side ending ends the bridge: ssh closes, the run sees its
    // connection go.
    tokio::select! {
        _ = upstream => {}
        _ = downstream => {}
    }
    // Exit now: a read of stdin still waiting on its blocking thread would
    // keep the runtime (and stdout, so the near side's view) open until the
    // near side next wrote.
    std::process::exit(0)
}
