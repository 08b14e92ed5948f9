//! A TCP forwarder, for tests of what crosses the network: restarts behind a stable address,
//! streams cut or retargeted to another replica.

use std::sync::Arc;

use tokio::task::JoinHandle;

/// A TCP forwarder with a stable address in front of a server that restarts on new ports:
/// what a load balancer is to real clients. Connections are forwarded to the current target;
/// when the server stops, its side closes and so does the client's.
pub struct Proxy {
    pub addr: std::net::SocketAddr,
    target: Arc<std::sync::Mutex<std::net::SocketAddr>>,
    task: JoinHandle<()>,
}

impl Proxy {
    pub async fn to(target: std::net::SocketAddr) -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("proxy binds");
        let addr = listener.local_addr().expect("proxy address");
        let target = Arc::new(std::sync::Mutex::new(target));
        let current = target.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let to = *current.lock().expect("target");
                tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(to).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
        Proxy { addr, target, task }
    }

    /// Forwards new connections to `target` from now on.
    pub fn retarget(&self, target: std::net::SocketAddr) {
        *self.target.lock().expect("target") = target;
    }

    pub fn uri(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}
