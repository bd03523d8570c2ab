//! A SOCKS5 proxy on loopback that every Chromium connection goes through
//! (`--proxy-server=socks5://…` with `--proxy-bypass-list=<-loopback>`, so loopback too).
//!
//! It is the network half of the URL policy, below the DevTools `Fetch` check: it sees
//! connections `Fetch` does not pause (WebSockets, anything a worker opens), and it resolves the
//! host itself, checks **every** address ([`carapace_media::netguard::resolve_public`], the rule media
//! downloads and the URL policy use too) and connects
//! to one of the addresses it checked — so a host that re-resolves to a private address between
//! the check and the connection (DNS rebinding) gets nowhere.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use carapace_media::netguard::{AddressRefused, resolve_public};

/// The running proxy; stops accepting when dropped.
#[derive(Debug)]
pub(crate) struct Socks5Proxy {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Socks5Proxy {
    /// Listens on `127.0.0.1:0`.
    pub(crate) async fn start(allow_private: bool) -> std::io::Result<Socks5Proxy> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            loop {
                let conn = match listener.accept().await {
                    Ok((conn, _)) => conn,
                    Err(e) => {
                        // EMFILE and friends: do not spin.
                        tracing::warn!(error = %e, "socks5 accept");
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                        continue;
                    }
                };
                tokio::spawn(async move {
                    if let Err(e) = serve(conn, allow_private).await {
                        tracing::debug!(error = %e, "socks5 connection");
                    }
                });
            }
        });
        Ok(Socks5Proxy { addr, task })
    }

    /// `socks5://127.0.0.1:<port>`.
    pub(crate) fn url(&self) -> String {
        format!("socks5://{}", self.addr)
    }
}

impl Drop for Socks5Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

// RFC 1928 reply codes.
const REP_OK: u8 = 0x00;
const REP_NOT_ALLOWED: u8 = 0x02;
const REP_HOST_UNREACHABLE: u8 = 0x04;
const REP_REFUSED: u8 = 0x05;
const REP_CMD_UNSUPPORTED: u8 = 0x07;
const REP_ATYP_UNSUPPORTED: u8 = 0x08;

async fn reply(conn: &mut TcpStream, rep: u8) -> std::io::Result<()> {
    conn.write_all(&[5, rep, 0, 1, 0, 0, 0, 0, 0, 0]).await
}

async fn serve(mut conn: TcpStream, allow_private: bool) -> std::io::Result<()> {
    // Greeting: VER NMETHODS METHODS…; we only do "no authentication".
    let mut head = [0u8; 2];
    conn.read_exact(&mut head).await?;
    if head[0] != 5 {
        return Ok(());
    }
    let mut methods = vec![0u8; usize::from(head[1])];
    conn.read_exact(&mut methods).await?;
    if !methods.contains(&0) {
        conn.write_all(&[5, 0xff]).await?;
        return Ok(());
    }
    conn.write_all(&[5, 0]).await?;

    // Request: VER CMD RSV ATYP DST.ADDR DST.PORT.
    let mut req = [0u8; 4];
    conn.read_exact(&mut req).await?;
    if req[1] != 1 {
        return reply(&mut conn, REP_CMD_UNSUPPORTED).await;
    }
    let (host, literal) = match req[3] {
        1 => {
            let mut a = [0u8; 4];
            conn.read_exact(&mut a).await?;
            let ip = IpAddr::V4(Ipv4Addr::from(a));
            (ip.to_string(), Some(ip))
        }
        4 => {
            let mut a = [0u8; 16];
            conn.read_exact(&mut a).await?;
            let ip = IpAddr::V6(Ipv6Addr::from(a));
            (ip.to_string(), Some(ip))
        }
        3 => {
            let mut len = [0u8; 1];
            conn.read_exact(&mut len).await?;
            let mut name = vec![0u8; usize::from(len[0])];
            conn.read_exact(&mut name).await?;
            let name = String::from_utf8_lossy(&name).into_owned();
            let literal = name.parse::<IpAddr>().ok();
            (name, literal)
        }
        _ => return reply(&mut conn, REP_ATYP_UNSUPPORTED).await,
    };
    let mut port = [0u8; 2];
    conn.read_exact(&mut port).await?;
    let port = u16::from_be_bytes(port);

    let shown = format!("{host}:{port}");
    let name = literal.map_or(host, |ip| ip.to_string());
    let addrs = match resolve_public(&name, port, allow_private).await {
        Ok(addrs) => addrs,
        Err(e @ AddressRefused::Unresolvable { .. }) => {
            tracing::info!(target = %shown, error = %e, "browser connection: host unreachable");
            return reply(&mut conn, REP_HOST_UNREACHABLE).await;
        }
        Err(e) => {
            tracing::info!(target = %shown, error = %e, "browser connection refused");
            return reply(&mut conn, REP_NOT_ALLOWED).await;
        }
    };
    // Connect to an address that was checked, never to a fresh resolution.
    let mut upstream = None;
    for ip in &addrs {
        if let Ok(s) = TcpStream::connect(*ip).await {
            upstream = Some(s);
            break;
        }
    }
    let Some(mut upstream) = upstream else {
        return reply(&mut conn, REP_REFUSED).await;
    };
    reply(&mut conn, REP_OK).await?;
    let _ = tokio::io::copy_bidirectional(&mut conn, &mut upstream).await;
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    async fn connect_via(proxy: &Socks5Proxy, target: SocketAddr) -> u8 {
        let mut c = TcpStream::connect(proxy.addr).await.unwrap();
        c.write_all(&[5, 1, 0]).await.unwrap();
        let mut g = [0u8; 2];
        c.read_exact(&mut g).await.unwrap();
        assert_eq!(g, [5, 0]);
        let mut req = vec![5, 1, 0];
        match target.ip() {
            IpAddr::V4(a) => {
                req.push(1);
                req.extend_from_slice(&a.octets());
            }
            IpAddr::V6(a) => {
                req.push(4);
                req.extend_from_slice(&a.octets());
            }
        }
        req.extend_from_slice(&target.port().to_be_bytes());
        c.write_all(&req).await.unwrap();
        let mut rep = [0u8; 10];
        c.read_exact(&mut rep).await.unwrap();
        rep[1]
    }

    #[tokio::test]
    async fn loopback_is_refused_unless_allowed() {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let target = l.local_addr().unwrap();
        let closed = Socks5Proxy::start(false).await.unwrap();
        assert_eq!(connect_via(&closed, target).await, REP_NOT_ALLOWED);
        let open = Socks5Proxy::start(true).await.unwrap();
        assert_eq!(connect_via(&open, target).await, REP_OK);
    }
}
