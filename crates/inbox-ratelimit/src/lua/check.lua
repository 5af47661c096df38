-- inboxgw rate limiter: GCRA decisions for a batch of requests, each all or nothing over its
-- buckets. The reference for this arithmetic is `step` in crates/inbox-ratelimit/src/gcra.rs.
--
-- KEYS      every request's buckets, request after request (each holds its TAT, in
--           microseconds of Redis's clock)
-- ARGV[1]   the number of requests
-- then, per request: its bucket count n, its cost (cells), and n pairs of
--           (emission interval µs, burst)
-- Returns   5 integers per request: {allowed 0|1, limit, remaining, retry_after µs,
--           reset_after µs}
--
-- Requests are decided in order, as if one after another at the same instant: a later
-- request sees what earlier ones charged. Batching is how the gateway amortises the script's
-- fixed cost (the call itself, TIME) and reads and writes each bucket once per batch, not
-- once per decision; a batch of one is the unbatched case.
--
-- Time is Redis's own (TIME), so every replica shares one clock. Numbers are Lua doubles,
-- exact for integers below 2^53 µs (285 years); quotas are limited to periods of a year.
-- Redis (5 and later) replicates the writes, not the script, so reading TIME is allowed;
-- numbers passed to redis.call are written as integers (no exponent) by Redis 5, 6 and 7.
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local tats = {}        -- key -> TAT as known in this batch (read once)
local dirty = {}       -- keys charged in this batch, in first-charge order
local charged = {}     -- key -> true once in `dirty`
local out = {}
local arg = 2
local first_key = 1
for _ = 1, tonumber(ARGV[1]) do
  local n = tonumber(ARGV[arg])
  local cost = tonumber(ARGV[arg + 1])
  arg = arg + 2
  local allowed = 1
  local limit, remaining = nil, nil
  local retry, retry_limit = 0, nil
  local reset_now, reset_after_charge = 0, 0
  local new_tats = {}
  for b = 0, n - 1 do
    local key = KEYS[first_key + b]
    local t = tonumber(ARGV[arg])
    local burst = tonumber(ARGV[arg + 1])
    arg = arg + 2
    local tat = tats[key]
    if tat == nil then
      local stored = redis.call('GET', key)
      if stored then
        tat = tonumber(stored)
        if not tat then
          return redis.error_reply('INBOXGW bucket ' .. key .. ' does not hold a number')
        end
      else
        tat = now
      end
      tats[key] = tat
    end
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
      if remaining == nil or left < remaining then
        remaining = left
        limit = burst
      end
      if new_tat - now > reset_after_charge then
        reset_after_charge = new_tat - now
      end
      new_tats[b] = new_tat
    end
  end
  if allowed == 0 then
    out[#out + 1] = 0
    out[#out + 1] = retry_limit
    out[#out + 1] = 0
    out[#out + 1] = retry
    out[#out + 1] = reset_now
  else
    for b = 0, n - 1 do
      local key = KEYS[first_key + b]
      tats[key] = new_tats[b]
      if not charged[key] then
        charged[key] = true
        dirty[#dirty + 1] = key
      end
    end
    out[#out + 1] = 1
    out[#out + 1] = limit
    out[#out + 1] = remaining
    out[#out + 1] = 0
    out[#out + 1] = reset_after_charge
  end
  first_key = first_key + n
end
for _, key in ipairs(dirty) do
  -- The key expires when its bucket is full again: an expired key and a full bucket are the same.
  local ttl_ms = math.ceil((tats[key] - now) / 1000)
  redis.call('SET', key, tats[key], 'PX', ttl_ms)
end
return out
