//! The fleet's layout in Redis: the names of its keys and channels, its Lua scripts and the
//! value of a registration (docs/protocol.md §11.1–11.2).

use mesh_proto::{NodeId, RoomName};

/// A sample drawn across the room, skipping (and cleaning) members that no longer count:
/// their key expired, or their server's lease lapsed. Draws `2k + 1` members, so that a
/// few stale ones still leave `k`.
pub(super) const SAMPLE_FN: &str = r"
local function sample(room_key, prefix, room, exclude, k)
  local out = {}
  if k <= 0 then return out end
  local ids = redis.call('SRANDMEMBER', room_key, 2 * k + 1)
  for _, id in ipairs(ids) do
    if #out >= k then break end
    if id ~= exclude then
      local node_key = prefix .. ':node:' .. room .. ':' .. id
      local v = redis.call('GET', node_key)
      if not v then
        redis.call('SREM', room_key, id)
      else
        local sid = string.match(v, '^(%x+) ')
        if sid then
          if redis.call('EXISTS', prefix .. ':srv:' .. sid) == 1 then
            table.insert(out, id)
          else
            redis.call('DEL', node_key)
            redis.call('SREM', room_key, id)
          end
        end
      end
    end
  end
  return out
end
";

/// KEYS: node, room. ARGV: value, ttl (s), node id, prefix, room, k. Writes the
/// registration and returns the key's previous value (or '') followed by a sample.
pub(super) const REGISTER: &str = r"
local old = redis.call('GET', KEYS[1])
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
redis.call('SADD', KEYS[2], ARGV[3])
redis.call('EXPIRE', KEYS[2], ARGV[2])
local out = sample(KEYS[2], ARGV[4], ARGV[5], ARGV[3], tonumber(ARGV[6]))
table.insert(out, 1, old or '')
return out
";

/// KEYS: room. ARGV: prefix, room, exclude, k.
pub(super) const SAMPLE: &str = r"
return sample(KEYS[1], ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4]))
";

/// KEYS: node, room. ARGV: value, ttl (s), node id, prefix, this server. Renews a
/// registration, unless another live server holds the key: then returns 0.
pub(super) const REANNOUNCE: &str = r"
local old = redis.call('GET', KEYS[1])
if old and old ~= ARGV[1] then
  local sid = string.match(old, '^(%x+) ')
  if sid and sid ~= ARGV[5] and redis.call('EXISTS', ARGV[4] .. ':srv:' .. sid) == 1 then
    return 0
  end
end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
redis.call('SADD', KEYS[2], ARGV[3])
redis.call('EXPIRE', KEYS[2], ARGV[2])
return 1
";

/// KEYS: node, room. ARGV: value, node id. Removes a registration if it is still the one
/// this session wrote.
pub(super) const UNREGISTER: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  redis.call('SREM', KEYS[2], ARGV[2])
  return 1
end
return 0
";

/// KEYS: node. ARGV: prefix, message. Publishes to the channel of the node's server:
/// returns the subscribers reached, -1 without a key, -2 for a value that does not decode.
pub(super) const UNICAST: &str = r"
local v = redis.call('GET', KEYS[1])
if not v then return -1 end
local sid = string.match(v, '^(%x+) ')
if not sid then return -2 end
return redis.call('PUBLISH', ARGV[1] .. ':to:' .. sid, ARGV[2])
";

/// A script's text and its SHA-1, for `EVALSHA`.
#[derive(Debug)]
pub(super) struct Script {
    text: &'static str,
    sha: String,
}

impl Script {
    pub(super) fn new(text: &'static str) -> Self {
        Self {
            text,
            sha: redis::Script::new(text).get_hash().to_owned(),
        }
    }
}

/// The scripts sent with every frame or update, by hash.
#[derive(Debug)]
pub(super) struct Scripts {
    pub(super) unicast: Script,
    pub(super) unregister: Script,
}

/// `EVALSHA sha` or `EVAL text`, to which the caller adds the keys and arguments.
pub(super) fn script<'p>(
    pipe: &'p mut redis::Pipeline,
    script: &Script,
    by_hash: bool,
) -> &'p mut redis::Pipeline {
    if by_hash {
        pipe.cmd("EVALSHA").arg(&script.sha)
    } else {
        pipe.cmd("EVAL").arg(script.text)
    }
}

/// The names of a fleet's keys and channels.
#[derive(Debug)]
pub(super) struct Keys {
    pub(super) prefix: String,
}

impl Keys {
    pub(super) fn server(&self, server: &str) -> String {
        format!("{}:srv:{server}", self.prefix)
    }
    pub(super) fn node(&self, room: &RoomName, node: &NodeId) -> String {
        format!("{}:node:{room}:{node}", self.prefix)
    }
    pub(super) fn room(&self, room: &RoomName) -> String {
        format!("{}:room:{room}", self.prefix)
    }
    pub(super) fn channel(&self, server: &str) -> String {
        format!("{}:to:{server}", self.prefix)
    }
    pub(super) fn broadcast(&self) -> String {
        format!("{}:broadcast", self.prefix)
    }
}

/// `"{server} {session}"`: 16 hex digits, a space, a decimal u64.
pub(super) fn parse_value(value: &[u8]) -> Option<(u64, u64)> {
    let text = std::str::from_utf8(value).ok()?;
    let (server, session) = text.split_once(' ')?;
    if server.len() != 16 {
        return None;
    }
    Some((u64::from_str_radix(server, 16).ok()?, session.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registration_values_parse_or_are_refused() {
        assert_eq!(parse_value(b"00000000000000ff 42"), Some((255, 42)));
        for bad in [
            &b""[..],
            b"ff 42",
            b"00000000000000ff",
            b"00000000000000fg 1",
            b"00000000000000ff x",
        ] {
            assert_eq!(parse_value(bad), None, "{bad:?}");
        }
    }
}
