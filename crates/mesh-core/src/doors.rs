//! The doors a node knows ([`mesh_proto::Frame::Doors`]): those its neighbours announced as
//! their own, and those they passed on from their own neighbours. A door travels at most
//! two links from its node: only announced doors are passed on.

use std::collections::VecDeque;

use mesh_proto::{Door, MAX_DOORS, NodeId, ServerUrl};

/// The doors a node knows, each list the most recent first and at most `cap` long.
#[derive(Debug)]
pub(crate) struct Book {
    cap: usize,
    /// Doors neighbours announced as their own.
    announced: VecDeque<(NodeId, ServerUrl)>,
    /// Doors neighbours passed on from their own neighbours (none of `announced`).
    heard: VecDeque<(NodeId, ServerUrl)>,
}

impl Book {
    /// An empty book keeping at most `cap` doors of each kind.
    pub fn new(cap: usize) -> Self {
        Self {
            cap,
            announced: VecDeque::new(),
            heard: VecDeque::new(),
        }
    }

    /// Announced doors first, then passed-on ones, each the most recent first.
    pub fn iter(&self) -> impl Iterator<Item = (NodeId, &ServerUrl)> {
        self.announced
            .iter()
            .chain(&self.heard)
            .map(|(peer, url)| (*peer, url))
    }

    /// What a new neighbour `peer` is told: `own` (this node's door) first, then those
    /// neighbours announced as theirs (not `peer`'s own), at most [`MAX_DOORS`].
    pub fn to_announce(&self, own: Option<(NodeId, &ServerUrl)>, peer: NodeId) -> Vec<Door> {
        let announced = self.announced.iter().map(|(node, url)| (*node, url));
        own.into_iter()
            .chain(announced)
            .filter(|(node, _)| *node != peer)
            .take(MAX_DOORS)
            .map(|(node, url)| Door {
                node,
                url: url.clone(),
            })
            .collect()
    }

    /// `peer`'s `Doors` frame, heard by node `me`: `peer`'s own door is kept first among
    /// the announced ones, the others first among those heard of, in the order `peer` gave
    /// them; an older entry of the same node goes, and beyond `cap` the least recent one.
    pub fn on_doors(&mut self, me: NodeId, peer: NodeId, mut doors: Vec<Door>) {
        doors.truncate(MAX_DOORS);
        for Door { node, url } in doors.into_iter().rev() {
            if node == me {
                continue;
            }
            let known = self.announced.iter().any(|(p, _)| *p == node);
            self.heard.retain(|(p, _)| *p != node);
            if node == peer {
                push_recent(&mut self.announced, node, url, self.cap);
            } else if !known {
                push_recent(&mut self.heard, node, url, self.cap);
            }
        }
    }
}

/// Puts `node`'s door first in `list`, without an older entry of it, keeping the `cap`
/// most recent.
fn push_recent(list: &mut VecDeque<(NodeId, ServerUrl)>, node: NodeId, url: ServerUrl, cap: usize) {
    list.retain(|(p, _)| *p != node);
    list.push_front((node, url));
    list.truncate(cap);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(i: u8) -> NodeId {
        NodeId::from_bytes([i; 16])
    }

    fn door(i: u8) -> Door {
        Door {
            node: id(i),
            url: format!("ws://n{i}/ws").parse().unwrap(),
        }
    }

    fn nodes(book: &Book) -> Vec<NodeId> {
        book.iter().map(|(n, _)| n).collect()
    }

    #[test]
    fn own_doors_come_first_and_a_door_travels_two_links() {
        let mut book = Book::new(4);
        let me = id(0);
        // Neighbour 1 announces its own door and passes on 2's and one of ours.
        book.on_doors(me, id(1), vec![door(1), door(2), door(0)]);
        assert_eq!(nodes(&book), [id(1), id(2)]);
        // To a new neighbour 3: our own, then the announced one; never what we only heard of.
        let own = door(9);
        let told = book.to_announce(Some((own.node, &own.url)), id(3));
        assert_eq!(
            told.iter().map(|d| d.node).collect::<Vec<_>>(),
            [id(9), id(1)]
        );
        // Not a neighbour's own door back to it.
        assert!(book.to_announce(None, id(1)).is_empty());
        // Heard of first, announced later: moves to the announced list.
        book.on_doors(me, id(2), vec![door(2)]);
        assert_eq!(nodes(&book), [id(2), id(1)]);
    }

    #[test]
    fn each_list_keeps_the_most_recent_within_its_bound() {
        let mut book = Book::new(3);
        for i in 1..=10 {
            book.on_doors(id(0), id(i), vec![door(i), door(100 + i)]);
        }
        assert_eq!(
            nodes(&book),
            [id(10), id(9), id(8), id(110), id(109), id(108)]
        );
        let many: Vec<Door> = (20..40).map(door).collect();
        book.on_doors(id(0), id(20), many);
        assert_eq!(book.iter().count(), 6);
    }
}
