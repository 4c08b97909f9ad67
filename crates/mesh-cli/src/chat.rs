//! The chat loop's commands: what a line typed on stdin does, how events are printed, and
//! how `/to` finds a node from a prefix of its id.

use std::collections::VecDeque;

use mesh_node::{Event, Node};
use mesh_proto::NodeId;

use crate::escape::{escape, escape_bytes};
use crate::stats;

/// Node ids heard from (link up, a message or a broadcast), kept for `/to` prefixes.
const HEARD_KEPT: usize = 1024;

/// The commands, as `/help` prints them.
pub const COMMANDS: &str = "  <text>               broadcast <text> to every node of the mesh
  /to <id> <text>      send <text> to one node; <id> may be a unique prefix of a known id
                       (a neighbour or a node heard from), as git takes hash prefixes
  /peers               the neighbours: `neighbours: N`, then `neighbour <id>` lines
  /links               the links: `links: N`, then `link <id> <local> <remote>` lines
                       (the selected ICE candidate pair, e.g. host/udp srflx/udp)
  /stats               a short summary of the node's counters
  /stats --json        the same counters as one JSON object on one line
  /help                this list
  /quit                leave the mesh (as does the end of input)";

/// The chat state: the node, and the ids heard from.
#[derive(Debug)]
pub struct Chat {
    node: Node,
    /// Most recent last; bounded by [`HEARD_KEPT`].
    heard: VecDeque<NodeId>,
}

impl Chat {
    pub fn new(node: Node) -> Self {
        Self {
            node,
            heard: VecDeque::new(),
        }
    }

    /// Gives the node back, to leave.
    pub fn into_node(self) -> Node {
        self.node
    }

    /// Prints what an event means to the person at the terminal: messages on stdout, link
    /// changes as logs (`-v`). A message is one line whatever its bytes: its text goes
    /// through [`escape_bytes`], never raw to the terminal.
    pub fn on_event(&mut self, event: Event) {
        match event {
            Event::Message { from, data } => {
                self.heard(from);
                println!("{from} {}", escape_bytes(&data));
            }
            Event::Broadcast { from, data } => {
                self.heard(from);
                println!("{from} [broadcast] {}", escape_bytes(&data));
            }
            Event::LinkUp { peer } => {
                self.heard(peer);
                tracing::info!(%peer, "neighbour up");
            }
            Event::LinkDown { peer, reason } => tracing::info!(%peer, "neighbour down: {reason}"),
            Event::Unreachable { to, at } => {
                eprintln!("a message to {to} was dropped at {at}: no route from there");
            }
            _ => {}
        }
    }

    fn heard(&mut self, id: NodeId) {
        remember(&mut self.heard, id);
    }

    /// Runs one stdin line; `false` to quit.
    pub async fn command(&mut self, line: &str) -> bool {
        let result = match line.split_once(' ').unwrap_or((line, "")) {
            ("", _) => Ok(()),
            ("/quit", _) => return false,
            ("/help", _) => {
                println!("{COMMANDS}");
                Ok(())
            }
            ("/peers", _) => self.node.neighbours().await.map(|peers| {
                println!("neighbours: {}", peers.len());
                for peer in peers {
                    println!("neighbour {peer}");
                }
            }),
            ("/links", _) => self.node.links().await.map(|links| {
                println!("links: {}", links.len());
                for link in links {
                    let pair = link.candidate_pair.unwrap_or_default();
                    println!("link {} {pair}", link.peer);
                }
            }),
            ("/stats", "") => self
                .node
                .stats()
                .await
                .map(|s| print!("{}", stats::summary(self.node.id(), &s))),
            ("/stats", "--json") => self
                .node
                .stats()
                .await
                .map(|s| println!("{}", stats::Json::new(self.node.id(), &s).to_line())),
            ("/to", rest) => return self.send_to(rest).await,
            (command, _) if command.starts_with('/') => {
                eprintln!("unknown command {line:?}; the commands are:\n{COMMANDS}");
                Ok(())
            }
            _ => self.node.broadcast(line.as_bytes()).await.map(|reached| {
                if reached == 0 {
                    eprintln!("not sent: no neighbour yet (the node is still joining)");
                }
            }),
        };
        if let Err(e) = result {
            report(e);
        }
        true
    }

    /// `/to <id or prefix> <text>`.
    async fn send_to(&mut self, rest: &str) -> bool {
        let (to, text) = rest.split_once(' ').unwrap_or((rest, ""));
        if to.is_empty() {
            eprintln!("usage: /to <node-id or a unique prefix of one> <text>");
            return true;
        }
        let to = match to.parse::<NodeId>() {
            Ok(id) => id,
            Err(_) => {
                let mut known = match self.node.neighbours().await {
                    Ok(neighbours) => neighbours,
                    Err(e) => {
                        report(e);
                        return true;
                    }
                };
                known.extend(self.heard.iter().copied());
                match resolve(to, &known) {
                    Ok(id) => id,
                    Err(e) => {
                        eprintln!("error: {e}");
                        return true;
                    }
                }
            }
        };
        if let Err(e) = self.node.send(to, text.as_bytes()).await {
            report(e);
        }
        true
    }
}

/// Prints `error: <e and its sources>` on stderr, escaped: an error can carry what a peer
/// or a server said (e.g. a bootstrap server's refusal).
fn report(e: impl std::error::Error + Send + Sync + 'static) {
    eprintln!("error: {}", escape(&format!("{:#}", anyhow::Error::new(e))));
}

/// Puts `id` last in `heard` (once), dropping the oldest beyond [`HEARD_KEPT`].
fn remember(heard: &mut VecDeque<NodeId>, id: NodeId) {
    if let Some(i) = heard.iter().position(|known| *known == id) {
        heard.remove(i);
    } else if heard.len() == HEARD_KEPT {
        heard.pop_front();
    }
    heard.push_back(id);
}

/// Why `/to` found no single node for a prefix.
#[derive(Debug, PartialEq, Eq)]
pub enum PrefixError {
    /// Not a prefix of any known id.
    Unknown(String),
    /// A prefix of more than one known id (they are listed, at most 8).
    Ambiguous(String, Vec<NodeId>),
}

impl std::fmt::Display for PrefixError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PrefixError::Unknown(prefix) => write!(
                f,
                "no known node id starts with {prefix:?} (known: neighbours and nodes heard \
                 from; /peers lists the neighbours); give the full id"
            ),
            PrefixError::Ambiguous(prefix, ids) => {
                write!(f, "{prefix:?} is ambiguous: it begins ")?;
                for (i, id) in ids.iter().enumerate() {
                    let sep = if i == 0 { "" } else { ", " };
                    write!(f, "{sep}{id}")?;
                }
                write!(f, "; type more of the id")
            }
        }
    }
}

impl std::error::Error for PrefixError {}

/// The one id among `known` that starts with `prefix` (case-insensitive; hyphens may be
/// left out, as in the simple UUID form).
pub fn resolve(prefix: &str, known: &[NodeId]) -> Result<NodeId, PrefixError> {
    let simple = |s: &str| -> String {
        s.chars()
            .filter(|c| *c != '-')
            .map(|c| c.to_ascii_lowercase())
            .collect()
    };
    let wanted = simple(prefix);
    let mut matches: Vec<NodeId> = known
        .iter()
        .copied()
        .filter(|id| !wanted.is_empty() && simple(&id.to_string()).starts_with(&wanted))
        .collect();
    matches.sort_unstable();
    matches.dedup();
    match matches.as_slice() {
        [] => Err(PrefixError::Unknown(prefix.to_owned())),
        [one] => Ok(*one),
        _ => {
            matches.truncate(8);
            Err(PrefixError::Ambiguous(prefix.to_owned(), matches))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> NodeId {
        s.parse().unwrap()
    }

    #[test]
    fn a_unique_prefix_finds_its_node() {
        let a = id("645afe13-d2db-846e-8f17-e59deedb16bb");
        let b = id("645b0000-d2db-846e-8f17-e59deedb16bb");
        let c = id("0745417c-f86f-8a45-a5d2-4d08085b221b");
        let known = [a, b, c, a];
        assert_eq!(resolve("0", &known), Ok(c));
        assert_eq!(resolve("645A", &known), Ok(a));
        assert_eq!(resolve("645afe13-d2", &known), Ok(a));
        assert_eq!(resolve("645afe13d2", &known), Ok(a));
        assert_eq!(
            resolve("645", &known),
            Err(PrefixError::Ambiguous("645".into(), vec![a, b]))
        );
        assert_eq!(
            resolve("ff", &known),
            Err(PrefixError::Unknown("ff".into()))
        );
        assert_eq!(resolve("-", &known), Err(PrefixError::Unknown("-".into())));
        assert_eq!(resolve("64", &[]), Err(PrefixError::Unknown("64".into())));
    }

    #[test]
    fn the_errors_say_what_to_do() {
        let a = id("645afe13-d2db-846e-8f17-e59deedb16bb");
        let b = id("645b0000-d2db-846e-8f17-e59deedb16bb");
        let ambiguous = resolve("645", &[a, b]).unwrap_err().to_string();
        assert!(ambiguous.contains("ambiguous"), "{ambiguous}");
        assert!(ambiguous.contains(&a.to_string()), "{ambiguous}");
        assert!(ambiguous.contains(&b.to_string()), "{ambiguous}");
        let unknown = resolve("ff", &[a]).unwrap_err().to_string();
        assert!(unknown.contains("no known node id"), "{unknown}");
    }

    #[test]
    fn the_heard_list_is_bounded_and_keeps_the_latest() {
        let nth = |i: u32| {
            let mut bytes = [0u8; 16];
            bytes[..4].copy_from_slice(&i.to_be_bytes());
            NodeId::from(bytes)
        };
        let mut heard = VecDeque::new();
        for i in 0..2 * HEARD_KEPT as u32 {
            remember(&mut heard, nth(i));
        }
        assert_eq!(heard.len(), HEARD_KEPT);
        assert_eq!(heard.front(), Some(&nth(HEARD_KEPT as u32)));
        // Heard again: moved to the back, not kept twice.
        remember(&mut heard, nth(HEARD_KEPT as u32));
        assert_eq!(heard.len(), HEARD_KEPT);
        assert_eq!(heard.back(), Some(&nth(HEARD_KEPT as u32)));
        assert_eq!(heard.front(), Some(&nth(HEARD_KEPT as u32 + 1)));
    }
}
