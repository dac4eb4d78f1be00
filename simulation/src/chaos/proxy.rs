//! A fault-injecting TCP proxy between the nodes. Each node's membership address is its proxy;
//! the proxy forwards to the node's real port. Each node binds its outgoing peer connections to
//! a loopback address of its own (`peer_source_address`), so the proxy knows every
//! connection's link: from the node that dialed to the node behind the proxy. Faults are set per
//! directed link and act on the bytes flowing that way, on every connection of the link (a
//! connection carries requests one way and answers the other):
//!
//! - `Blocked`: bytes stop flowing (a partition; one way when only one direction is blocked).
//!   TCP would retransmit and stall the same way; when the link heals, what waited flows on.
//! - `Delayed(d)`: each chunk waits `d` before it is passed on.
//! - `Lossy(p)`: each chunk kills its connection with probability `p`/1000 (loss heavy enough
//!   that TCP gives up): both nodes see a reset and reconnect.
//!
//! Connections from addresses that are not a node's (clients, tools) pass untouched.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::rng::Rng;

/// What happens to bytes on one directed link.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Link {
    #[default]
    Up,
    Blocked,
    Delayed(Duration),
    /// Chance in a thousand that a chunk kills its connection.
    Lossy(u32),
}

/// Link states by (from node, to node).
type Links = BTreeMap<(usize, usize), Link>;

/// The loopback address node `node` dials its peers from.
#[must_use]
pub fn source_address(node: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, u8::try_from(11 + node).expect("a few nodes")))
}

fn node_of(address: IpAddr, nodes: usize) -> Option<usize> {
    (0..nodes).find(|node| source_address(*node) == address)
}

/// The proxies of a cluster: one listener per node.
#[derive(Debug)]
pub struct Proxy {
    links: watch::Sender<Links>,
    /// Where each node's proxy listens: its membership address.
    addresses: Vec<SocketAddr>,
    tasks: Vec<JoinHandle<()>>,
    /// Connections accepted from a node's source address: peer traffic under the faults.
    from_nodes: Arc<AtomicU64>,
}

impl Proxy {
    /// Starts a proxy in front of each of `targets` (the nodes' real addresses).
    ///
    /// # Errors
    /// A listener could not be bound.
    pub async fn start(targets: &[SocketAddr], seed: u64) -> Result<Proxy, String> {
        let (links, _) = watch::channel(Links::new());
        let rng = Arc::new(Mutex::new(Rng::new(seed)));
        let from_nodes = Arc::new(AtomicU64::new(0));
        let mut addresses = Vec::new();
        let mut tasks = Vec::new();
        for (to, target) in targets.iter().enumerate() {
            let listener = TcpListener::bind("127.0.0.1:0").await.map_err(|e| e.to_string())?;
            addresses.push(listener.local_addr().map_err(|e| e.to_string())?);
            let accept = Accept {
                to,
                nodes: targets.len(),
                target: *target,
                links: links.subscribe(),
                rng: Arc::clone(&rng),
                from_nodes: Arc::clone(&from_nodes),
            };
            tasks.push(tokio::spawn(accept.run(listener)));
        }
        Ok(Proxy { links, addresses, tasks, from_nodes })
    }

    /// Node `node`'s address as its peers should know it.
    #[must_use]
    pub fn address(&self, node: usize) -> SocketAddr {
        self.addresses[node]
    }

    /// Sets the link from `from` to `to`.
    pub fn set(&self, from: usize, to: usize, link: Link) {
        self.links.send_modify(|links| {
            links.insert((from, to), link);
        });
    }

    /// Connections accepted so far from the nodes' source addresses.
    #[must_use]
    pub fn peer_connections(&self) -> u64 {
        self.from_nodes.load(Ordering::Relaxed)
    }

    /// Every link up again.
    pub fn heal(&self) {
        self.links.send_modify(BTreeMap::clear);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.tasks.iter().for_each(JoinHandle::abort);
    }
}

/// One node's proxy listener.
struct Accept {
    to: usize,
    nodes: usize,
    target: SocketAddr,
    links: watch::Receiver<Links>,
    rng: Arc<Mutex<Rng>>,
    from_nodes: Arc<AtomicU64>,
}

impl Accept {
    async fn run(self, listener: TcpListener) {
        loop {
            let Ok((inbound, peer)) = listener.accept().await else {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            };
            let from = node_of(peer.ip(), self.nodes);
            if from.is_some() {
                self.from_nodes.fetch_add(1, Ordering::Relaxed);
            }
            let target = self.target;
            let links = self.links.clone();
            let rng = Arc::clone(&self.rng);
            let to = self.to;
            tokio::spawn(async move {
                let Ok(outbound) = TcpStream::connect(target).await else { return };
                let _ = inbound.set_nodelay(true);
                let _ = outbound.set_nodelay(true);
                let (in_read, in_write) = inbound.into_split();
                let (out_read, out_write) = outbound.into_split();
                // Requests flow from the dialing node to this one; answers flow back.
                let requests = from.map(|from| (from, to));
                let answers = from.map(|from| (to, from));
                let forward = pump(in_read, out_write, requests, links.clone(), Arc::clone(&rng));
                let back = pump(out_read, in_write, answers, links, rng);
                // Either direction ending (or a loss) ends the connection.
                tokio::select! {
                    () = forward => {}
                    () = back => {}
                }
            });
        }
    }
}

/// Passes bytes from `read` to `write` as the link `link` (if any) allows.
async fn pump(
    mut read: tokio::net::tcp::OwnedReadHalf,
    mut write: tokio::net::tcp::OwnedWriteHalf,
    link: Option<(usize, usize)>,
    mut links: watch::Receiver<Links>,
    rng: Arc<Mutex<Rng>>,
) {
    let mut buffer = vec![0_u8; 64 * 1024];
    loop {
        let read = match read.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(read) => read,
        };
        let state = |links: &Links| link.and_then(|l| links.get(&l).copied()).unwrap_or_default();
        // A blocked link holds the chunk until it heals.
        if links.wait_for(|links| state(links) != Link::Blocked).await.is_err() {
            return;
        }
        let now = state(&links.borrow());
        match now {
            Link::Up | Link::Blocked => {}
            Link::Delayed(delay) => tokio::time::sleep(delay).await,
            Link::Lossy(per_mille) => {
                let lost = rng.lock().unwrap_or_else(PoisonError::into_inner).below(1_000);
                if lost < u64::from(per_mille) {
                    return;
                }
            }
        }
        if write.write_all(&buffer[..read]).await.is_err() {
            return;
        }
    }
}
