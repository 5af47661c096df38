-- inboxgw rate limiter: GCRA decisions for a batch of requests, each all or nothing over its
-- buckets. The reference for this arithmetic is `step` in crates/inbox-ratelimit/src/gcra.rs.
--
-- KEYS[1]   the hash holding every bucket: field = bucket name, value = its TAT in
--           microseconds of Redis's clock
-- ARGV[1]   the number of requests
-- then, per request: its bucket count n, its cost (cells), and n triples of
--           (bucket name, emission interval µs, burst)
-- Returns   5 integers per request: {allowed 0|1, limit, remaining, retry_after µs,
--           reset_after µs}
--
-- Requests are decided in order, as if one after another at the same instant: a later
-- request sees what earlier ones charged. Batching is how the gateway amortises the script's
-- fixed cost: one call, one TIME, one HMGET of every bucket the batch names and one HSET of
-- every bucket it charged. A batch of one is the unbatched case.
--
-- Buckets are fields of one hash rather than keys of their own because a key's expiry makes
-- every write about twice as dear; a bucket whose TAT has passed is full, the same as an
-- absent one, and the sweep script deletes those fields.
--
-- Time is Redis's own (TIME), so every replica shares one clock. Numbers are Lua doubles,
-- exact for integers below 2^53 µs (285 years); quotas are limited to periods of a year.
-- Redis (5 and later) replicates the writes, not the script, so reading TIME is allowed;
-- numbers passed to redis.call are written as integers (no exponent) by Redis 5, 6 and 7.
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local hash = KEYS[1]
local requests = tonumber(ARGV[1])

-- Read every bucket the batch names, once.
local tats = {}
local names, named = {}, 0
local arg = 2
for _ = 1, requests do
  local n = tonumber(ARGV[arg])
  arg = arg + 2
  for _ = 1, n do
    local name = ARGV[arg]
    if tats[name] == nil then
      tats[name] = false
      named = named + 1
      names[named] = name
    end
    arg = arg + 3
  end
end
for first = 1, named, 1000 do
  local last = math.min(first + 999, named)
  local values = redis.call('HMGET', hash, unpack(names, first, last))
  for i = first, last do
    local stored = values[i - first + 1]
    local tat = now
    if stored then
      tat = tonumber(stored)
      if not tat then
        return redis.error_reply('INBOXGW bucket ' .. names[i] .. ' does not hold a number')
      end
    end
    tats[names[i]] = tat
  end
end

-- Decide each request in order.
local out, filled = {}, 0
local charged, dirty = {}, 0
arg = 2
for _ = 1, requests do
  local n = tonumber(ARGV[arg])
  local cost = tonumber(ARGV[arg + 1])
  arg = arg + 2
  local allowed = 1
  local limit, remaining = 0, -1
  local retry, retry_limit = 0, 0
  local reset_now, reset_after_charge = 0, 0
  local a = arg
  for _ = 1, n do
    local t = tonumber(ARGV[a + 1])
    local burst = tonumber(ARGV[a + 2])
    local tat = tats[ARGV[a]]
    a = a + 3
    if tat < now then
      tat = now
    end
    local new_tat = tat + t * cost
    local allow_at = new_tat - t * burst
    if tat - now > reset_now then
      reset_now = tat - now
    end
    if now < allow_at then
      allowed = 0
      if allow_at - now > retry then
        retry = allow_at - now
        retry_limit = burst
      end
    else
      local left = math.floor((now - allow_at) / t)
      if left > burst then
        left = burst
      end
      if remaining < 0 or left < remaining then
        remaining = left
        limit = burst
      end
      if new_tat - now > reset_after_charge then
        reset_after_charge = new_tat - now
      end
    end
  end
  if allowed == 0 then
    out[filled + 1] = 0
    out[filled + 2] = retry_limit
    out[filled + 3] = 0
    out[filled + 4] = retry
    out[filled + 5] = reset_now
  else
    a = arg
    for _ = 1, n do
      local name = ARGV[a]
      local tat = tats[name]
      if tat < now then
        tat = now
      end
      tats[name] = tat + tonumber(ARGV[a + 1]) * cost
      if not charged[name] then
        charged[name] = true
        dirty = dirty + 1
      end
      a = a + 3
    end
    out[filled + 1] = 1
    out[filled + 2] = limit
    out[filled + 3] = remaining
    out[filled + 4] = 0
    out[filled + 5] = reset_after_charge
  end
  filled = filled + 5
  arg = arg + 3 * n
end

-- Write every charged bucket back, once.
if dirty > 0 then
  local fields, count = {}, 0
  for i = 1, named do
    local name = names[i]
    if charged[name] then
      fields[count + 1] = name
      fields[count + 2] = tats[name]
      count = count + 2
      if count >= 2000 then
        redis.call('HSET', hash, unpack(fields, 1, count))
        count = 0
      end
    end
  end
  if count > 0 then
    redis.call('HSET', hash, unpack(fields, 1, count))
  end
end
return out
