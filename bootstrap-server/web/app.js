// The page served by the bootstrap server at `/`: one browser node of the mesh, a log of what
// it receives, and one input line with mesh-node's chat syntax. Kept small and plain: it is a
// demo and the surface the headless-Chromium tests drive.
//
// Query parameters (all optional): `server` (the WebSocket URL; default this server's /ws),
// `room`, `ice` (JSON array of RTCIceServer), `keep-key` (keep the identity in localStorage).
import init, { MeshNode } from "./pkg/mesh_web.js";

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const scheme = location.protocol === "https:" ? "wss" : "ws";
const server = params.get("server") ?? `${scheme}://${location.host}/ws`;
const MAX_LINES = 1000;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

// What the tests and benchmarks read: the node once joined, every log line, the wasm
// module's exports (its memory), and when things happened (performance.now(), ms since the
// page's navigation started): the script ran, the node joined, each link came up.
const mesh = { node: null, lines: [], error: null, wasm: null,
               times: { script: performance.now(), joined: null, linkUp: [] } };
window.mesh = mesh;

// Control characters are shown escaped, as mesh-node prints them: a message cannot fake a
// log line.
const printable = (text) =>
  text.replace(/[\u0000-\u001f\u007f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`);

function log(line) {
  mesh.lines.push(line);
  if (mesh.lines.length > MAX_LINES) mesh.lines.shift();
  const el = $("log");
  el.textContent = mesh.lines.join("\n");
  el.scrollTop = el.scrollHeight;
}

function showNeighbours() {
  const ids = mesh.node.neighbours();
  $("degree").textContent = String(ids.length);
  $("neighbours").textContent = ids.join(" ");
}

function onEvent(e) {
  switch (e.type) {
    case "message": log(`${e.from} ${printable(decoder.decode(e.data))}`); break;
    case "broadcast": log(`${e.from} [broadcast] ${printable(decoder.decode(e.data))}`); break;
    case "linkUp":
      mesh.times.linkUp.push(performance.now());
      log(`* link up ${e.peer}`); showNeighbours(); break;
    case "linkDown": log(`* link down ${e.peer}: ${printable(e.reason)}`); showNeighbours(); break;
    case "serverConnected": $("status").textContent = `registered at ${e.server}`; break;
    case "serverDisconnected": $("status").textContent = "no server (the mesh carries on)"; break;
    case "unreachable": log(`* a message to ${e.to} was dropped at ${e.at}: no route from there`); break;
  }
}

function say(line) {
  line = line.trim();
  if (!line) return;
  try {
    if (line.startsWith("/to ")) {
      const m = line.match(/^\/to\s+(\S+)\s+(.*)$/);
      if (!m) { log("* usage: /to <node-id> <text>"); return; }
      // Acknowledged and sent again until it is: a chat line should arrive.
      mesh.node.sendReliable(m[1], encoder.encode(m[2]));
      log(`* to ${m[1]}: ${printable(m[2])}`);
    } else if (line.startsWith("/")) {
      log("* the commands: /to <node-id> <text>; any other line is broadcast");
    } else {
      mesh.node.broadcast(encoder.encode(line));
      log(`* broadcast: ${printable(line)}`);
    }
  } catch (err) {
    log(`* not sent: ${err.message ?? err}`);
  }
}

try {
  mesh.wasm = await init();
  const options = {
    room: params.get("room") ?? undefined,
    iceServers: params.has("ice") ? JSON.parse(params.get("ice")) : undefined,
    keyStorage: params.has("keep-key") ? "mesh-key" : undefined,
  };
  mesh.node = await MeshNode.join(server, options);
  mesh.times.joined = performance.now();
  $("node-id").textContent = mesh.node.nodeId;
  mesh.node.onEvent(onEvent);
  const input = $("say");
  input.disabled = false;
  input.addEventListener("keydown", (e) => {
    if (e.key === "Enter") { say(input.value); input.value = ""; }
  });
  input.focus();
} catch (err) {
  mesh.error = String(err.message ?? err);
  $("node-id").textContent = "not joined";
  $("status").textContent = mesh.error;
}
