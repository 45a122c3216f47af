//! The network layer: libp2p over TCP + Noise + Yamux, and the only place libp2p appears.
//!
//! This commit holds the building blocks; the service that owns the swarm comes next.
//!
//! | file | owns |
//! |---|---|
//! | `gossip.rs` | gossipsub settings, peer-score parameters, the two topics of a network |
//! | `codec.rs` | framing and size limits of `/gossipcoin/sync/1` |
//! | `peers.rs` | per-peer score, rate limiter and Status |
//! | `identity.rs` | the persistent ed25519 key in `node.key` |
//! | `config.rs`, `error.rs`, `types.rs` | [`NetConfig`], [`NetError`], the public types |

mod codec;
mod config;
mod error;
mod gossip;
mod identity;
mod peers;
mod types;

pub use config::NetConfig;
pub use error::NetError;
pub use gossip::REPORT_WINDOW;
pub use peers::BAN_SCORE;
pub use types::{MessageId, NetworkEvent, PeerId, PeerInfo, Reply, Verdict};
