//! Browser tabs and native nodes are peers of one mesh: three native WebRTC nodes and three
//! pages of the bootstrap server's own page (mesh-core in WebAssembly, on Chromium's
//! RTCPeerConnection) exchange unicasts in every direction and broadcasts; links between
//! browsers and between a browser and a native node are signaled through the mesh; a closed
//! tab is repaired around; with the server stopped the mesh keeps routing.
//!
//! Needs Chromium, Node.js with playwright-core and the browser bundle embedded in the server,
//! and runs in a network namespace with only loopback (Chromium's flags and why:
//! tests/browser/driver.mjs). `scripts/browser-test.sh` sets all of that up and runs it;
//! `.ci/run` calls the script. In the workspace run it is ignored (a laptop may lack them).

use std::collections::HashSet;
use std::time::Duration;

use bootstrap_server::Config;
use mesh_e2e::browser::{Browser, Page};
use mesh_e2e::{MeshNode, TestServer, e2e_overlay, wait_until, webrtc_mesh};
use mesh_node::Event;
use mesh_proto::NodeId;

/// Time for anything that involves links forming (a busy 2-core machine, 6 nodes, Chromium).
const LINKS: Duration = Duration::from_secs(90);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    Native(usize),
    Browser(Page),
}

struct Mesh {
    natives: Vec<MeshNode>,
    browser: Browser,
    pages: Vec<Page>,
    /// Every node's id: natives first, then pages.
    ids: Vec<(Who, NodeId)>,
    /// What each native node received so far: (from, text, broadcast).
    received: Vec<Vec<(NodeId, String, bool)>>,
}

impl Mesh {
    /// Reads what the native nodes received since the last call.
    fn drain_natives(&mut self) {
        for (i, node) in self.natives.iter_mut().enumerate() {
            while let Some(event) = node.events.try_recv() {
                match event {
                    Event::Message { from, data } => {
                        self.received[i].push((from, String::from_utf8_lossy(&data).into(), false))
                    }
                    Event::Broadcast { from, data } => {
                        self.received[i].push((from, String::from_utf8_lossy(&data).into(), true))
                    }
                    _ => {}
                }
            }
        }
    }

    async fn page_lines(&mut self, page: Page) -> Vec<String> {
        let lines = self.browser.eval(page, "window.mesh.lines").await;
        serde_json::from_value(lines).expect("lines are strings")
    }

    async fn neighbours(&mut self, who: Who) -> Vec<NodeId> {
        match who {
            Who::Native(i) => self.natives[i].node.neighbours().await.expect("running"),
            Who::Browser(page) => {
                let ids = self
                    .browser
                    .eval(page, "window.mesh.node.neighbours()")
                    .await;
                let ids: Vec<String> = serde_json::from_value(ids).expect("ids");
                ids.iter().map(|s| s.parse().expect("a node id")).collect()
            }
        }
    }

    /// `from` sends `text` to `to`: a native node through the library, a page through its
    /// input line (`/to <id> <text>`).
    async fn unicast(&mut self, from: Who, to: NodeId, text: &str) {
        match from {
            Who::Native(i) => self.natives[i]
                .node
                .send_reliable(to, text.as_bytes().to_vec())
                .await
                .unwrap_or_else(|e| panic!("native {i} sending to {to}: {e}")),
            Who::Browser(page) => self.browser.say(page, &format!("/to {to} {text}")).await,
        }
    }

    /// Whether `who` received `text` from `from` (as a broadcast or not).
    async fn has_received(&mut self, who: Who, from: NodeId, text: &str, broadcast: bool) -> bool {
        match who {
            Who::Native(i) => {
                self.drain_natives();
                self.received[i]
                    .iter()
                    .any(|(f, t, b)| *f == from && t == text && *b == broadcast)
            }
            Who::Browser(page) => {
                // As the CLI prints them: `<sender> <text>`, `<sender> [broadcast] <text>`.
                let line = if broadcast {
                    format!("{from} [broadcast] {text}")
                } else {
                    format!("{from} {text}")
                };
                self.page_lines(page).await.contains(&line)
            }
        }
    }

    /// Every node of `nodes` sends a unicast to every other one; waits until all arrived.
    async fn every_pair_exchanges(&mut self, nodes: &[(Who, NodeId)], tag: &str) {
        let mut expected = Vec::new();
        for (i, &(from, from_id)) in nodes.iter().enumerate() {
            for (j, &(to, to_id)) in nodes.iter().enumerate() {
                if i != j {
                    let text = format!("{tag}-{i}-to-{j}");
                    self.unicast(from, to_id, &text).await;
                    expected.push((to, from_id, text));
                }
            }
        }
        let total = expected.len();
        let what = format!("all {total} unicasts ({tag}) delivered");
        wait_until(&what, LINKS, async || {
            let mut missing = Vec::new();
            for (to, from, text) in &expected {
                if !self.has_received(*to, *from, text, false).await {
                    missing.push(text.clone());
                }
            }
            if missing.is_empty() {
                Ok(())
            } else {
                Err(format!("{} missing: {missing:?}", missing.len()))
            }
        })
        .await;
    }

    /// Every node's degree, by id.
    async fn degrees(&mut self, nodes: &[(Who, NodeId)]) -> Vec<usize> {
        let mut out = Vec::new();
        for &(who, _) in nodes {
            out.push(self.neighbours(who).await.len());
        }
        out
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Chromium, Node.js and the browser bundle: scripts/browser-test.sh (in .ci/run)"]
async fn browsers_and_native_nodes_route_broadcast_heal_and_outlive_the_server() {
    let embedded = bootstrap_server::web::BUNDLE_EMBEDDED;
    assert!(
        embedded,
        "the server was built without the browser bundle: run scripts/build-web.sh, then \
         this test again (cargo rebuilds the server with it)"
    );
    // With its STUN responder on: pages take their STUN server from the `Welcome`.
    let config = Config {
        stun_listen: Some(std::net::SocketAddr::from(([127, 0, 0, 1], 0))),
        ..Config::default()
    };
    let server = TestServer::start(config).await;
    let stun = format!(
        "stun:127.0.0.1:{}",
        server.stun_addr().expect("stun").port()
    );
    let natives = webrtc_mesh(&server, 3, e2e_overlay()).await;
    let mut browser = Browser::launch().await;
    let url = format!("http://{}/", server.addr());
    // A page told to join through a server that is not there says so, and does not hang.
    let lost = browser
        .open(&format!("{url}?server=ws://127.0.0.1:9/ws"))
        .await;
    let error = wait_until("the page reports it could not join", LINKS, async || {
        let error = browser.eval(lost, "window.mesh?.error ?? null").await;
        error.as_str().map(str::to_owned).ok_or("no error yet")
    })
    .await;
    assert!(error.contains("could not register"), "{error}");
    browser.close(lost).await;
    // `?keep-key`: the identity is kept in the page's storage, so a reload keeps the id.
    let kept = browser.open(&format!("{url}?keep-key")).await;
    let mut ids_seen = Vec::new();
    for reload in [false, true] {
        if reload {
            browser.reload(kept).await;
        }
        let id = wait_until("the keep-key page joined", LINKS, async || {
            let id = browser
                .eval(kept, "window.mesh?.node?.nodeId ?? null")
                .await;
            id.as_str().map(str::to_owned).ok_or("not joined yet")
        })
        .await;
        ids_seen.push(id);
    }
    assert_eq!(ids_seen[0], ids_seen[1], "the id survives a reload");
    browser.eval(kept, "window.mesh.node.leave()").await;
    browser.close(kept).await;
    let mut pages = Vec::new();
    for _ in 0..3 {
        pages.push(browser.open(&url).await);
    }
    let mut ids: Vec<(Who, NodeId)> = natives
        .iter()
        .enumerate()
        .map(|(i, n)| (Who::Native(i), n.node.id()))
        .collect();
    for &page in &pages {
        let id = wait_until("a page joined the mesh", LINKS, async || {
            let state = browser
                .eval(
                    page,
                    "({ id: window.mesh?.node?.nodeId ?? null, error: window.mesh?.error ?? null })",
                )
                .await;
            if let Some(error) = state["error"].as_str() {
                panic!("page {} could not join: {error}", page.0);
            }
            match state["id"].as_str() {
                Some(id) => Ok(id.parse::<NodeId>().expect("a node id")),
                None => Err("not joined yet".to_owned()),
            }
        })
        .await;
        // The page shows it.
        let shown = browser
            .eval(page, "document.getElementById('node-id').textContent")
            .await;
        assert_eq!(shown.as_str(), Some(id.to_string().as_str()));
        ids.push((Who::Browser(page), id));
    }
    let mut mesh = Mesh {
        received: vec![Vec::new(); natives.len()],
        natives,
        browser,
        pages: pages.clone(),
        ids: ids.clone(),
    };

    // Everyone links; a browser's links after its first are signaled through the mesh, to
    // browsers and to native nodes alike.
    let browser_ids: HashSet<NodeId> = ids
        .iter()
        .filter(|(w, _)| matches!(w, Who::Browser(_)))
        .map(|(_, id)| *id)
        .collect();
    wait_until(
        "browser-browser and browser-native links signaled through the mesh",
        LINKS,
        async || {
            let (mut to_browser, mut to_native) = (0, 0);
            for &page in &mesh.pages {
                let links = mesh.browser.eval(page, "window.mesh.node.links()").await;
                for link in links.as_array().into_iter().flatten() {
                    let peer: NodeId = link["peer"].as_str().expect("peer").parse().expect("id");
                    if link["carrier"] == "mesh" {
                        if browser_ids.contains(&peer) {
                            to_browser += 1;
                        } else {
                            to_native += 1;
                        }
                    }
                }
            }
            if to_browser > 0 && to_native > 0 {
                Ok(())
            } else {
                Err(format!(
                    "mesh-signaled links seen from the pages: {to_browser} to browsers, \
                     {to_native} to native nodes"
                ))
            }
        },
    )
    .await;
    let all = mesh.ids.clone();
    wait_until("every node has two links", LINKS, async || {
        let degrees = mesh.degrees(&all).await;
        if degrees.iter().all(|&d| d >= 2) {
            Ok(())
        } else {
            Err(format!("degrees {degrees:?}"))
        }
    })
    .await;
    // The counters agree: each page signaled sessions through the mesh. And each took the
    // server's STUN responder from its `Welcome`.
    for &page in &pages {
        let stats = mesh.browser.eval(page, "window.mesh.node.stats()").await;
        assert_eq!(
            stats["server_stun"].as_str(),
            Some(stun.as_str()),
            "{stats}"
        );
        let via_mesh = stats["sessions_initiated_via_mesh"].as_f64().unwrap_or(0.0)
            + stats["sessions_answered_via_mesh"].as_f64().unwrap_or(0.0);
        assert!(via_mesh > 0.0, "page {} stats {stats}", page.0);
    }

    // Every ordered pair exchanges a unicast (30 of them).
    mesh.every_pair_exchanges(&all, "hello").await;

    // A broadcast from a page and one from a native node reach every other node.
    let (b0, n0) = (all[3], all[0]);
    mesh.browser.say(pages[0], "flood-from-a-page").await;
    mesh.natives[0]
        .node
        .broadcast(b"flood-from-a-native".to_vec())
        .await
        .expect("broadcast");
    wait_until("both broadcasts reached every node", LINKS, async || {
        let mut missing = Vec::new();
        for &(who, id) in &all {
            for (origin, text) in [(b0, "flood-from-a-page"), (n0, "flood-from-a-native")] {
                if id != origin.1 && !mesh.has_received(who, origin.1, text, true).await {
                    missing.push(format!("{id} lacks {text}"));
                }
            }
        }
        if missing.is_empty() {
            Ok(())
        } else {
            Err(missing.join(", "))
        }
    })
    .await;

    // A tab closes: its neighbours notice, the others link around it and still route.
    let (closed, closed_id) = (pages[2], all[5].1);
    mesh.browser.close(closed).await;
    let rest: Vec<(Who, NodeId)> = all[..5].to_vec();
    wait_until(
        "no node keeps a link to the closed tab, and each has a link",
        LINKS,
        async || {
            let mut bad = Vec::new();
            for &(who, id) in &rest {
                let neighbours = mesh.neighbours(who).await;
                if neighbours.contains(&closed_id) || neighbours.is_empty() {
                    bad.push(format!("{id}: {neighbours:?}"));
                }
            }
            if bad.is_empty() {
                Ok(())
            } else {
                Err(bad.join("; "))
            }
        },
    )
    .await;
    mesh.every_pair_exchanges(&rest, "after-close").await;

    // The server stops: the mesh keeps routing between browsers and native nodes.
    server.stop().await.expect("the server stops");
    wait_until("every page noticed the server stop", LINKS, async || {
        for &page in &mesh.pages[..2] {
            let stats = mesh.browser.eval(page, "window.mesh.node.stats()").await;
            if stats["server_connected"] != false {
                return false;
            }
        }
        true
    })
    .await;
    mesh.every_pair_exchanges(&rest, "no-server").await;

    let Mesh {
        browser, natives, ..
    } = mesh;
    browser.shut().await;
    for node in natives {
        node.node.leave().await.expect("leave");
    }
}
