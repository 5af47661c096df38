-- inboxgw rate limiter: GCRA decisions for a batch of requests, each all or nothing over its
-- buckets. The reference for this arithmetic is `step` in crates/inbox-ratelimit/src/gcra.rs.
--
-- KEYS[1]   the hash holding every bucket: field = bucket name, value = its TAT in
--           microseconds of Redis's clock, as 8 bytes (a little-endian double, struct 'd')
-- ARGV[1]   the number of groups; requests in one group share a shape: the same cost over
--           buckets of the same quotas. Per group:
--             n             the buckets per request
--             cost          the cells each request takes
--             n pairs       (emission interval µs, burst) of each bucket, in order
--             count         the requests in the group
--             count × n     the bucket names, request after request
-- Returns   one string of 25 bytes per request, in the order the requests appear in ARGV:
--           allowed 0|1 (1 byte), limit, remaining (4 bytes each), retry_after µs,
--           reset_after µs (8 bytes each), little-endian (struct '<BI4I4i8i8')
--
-- Requests are decided in order, as if one after another at the same instant: a later
-- request sees what earlier ones charged. The requests of one batch were all waiting at the
-- same time, so grouping them by shape reorders nothing a caller could observe.
--
-- Batching is how the gateway amortises the script's fixed cost: one call, one TIME, one
-- HMGET of every bucket the batch names and one HSET of every bucket it charged. Grouping by
-- shape means a request costs one argument (its bucket's name) rather than five, and storing
-- TATs as 8 raw bytes spares Redis a decimal conversion each way: together those were most
-- of Redis's time per decision. The answers go back as one packed string for the same
-- reason (five integer replies per request cost Redis and the client more than the
-- decision). A batch of one is the unbatched case.
--
-- Buckets are fields of one hash rather than keys of their own because a key's expiry makes
-- every write about twice as dear; a bucket whose TAT has passed is full, the same as an
-- absent one, and the sweep script deletes those fields.
--
-- Time is Redis's own (TIME), so every replica shares one clock. Numbers are Lua doubles,
-- exact for integers below 2^53 µs (285 years); quotas are limited to periods of a year.
-- Redis (5 and later) replicates the writes, not the script, so reading TIME is allowed.
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local hash = KEYS[1]
local unpack_tat = struct.unpack
local pack = struct.pack

-- Read every bucket the batch names, once.
local tats = {}
local names, named = {}, 0
local arg = 2
for _ = 1, tonumber(ARGV[1]) do
  local n = tonumber(ARGV[arg])
  local count = tonumber(ARGV[arg + 2 + 2 * n])
  arg = arg + 3 + 2 * n
  for a = arg, arg + count * n - 1 do
    local name = ARGV[a]
    if tats[name] == nil then
      tats[name] = false
      named = named + 1
      names[named] = name
    end
  end
  arg = arg + count * n
end
for first = 1, named, 1000 do
  local last = math.min(first + 999, named)
  local values = redis.call('HMGET', hash, unpack(names, first, last))
  for i = first, last do
    local stored = values[i - first + 1]
    local tat = now
    if stored then
      if #stored ~= 8 then
        return redis.error_reply('INBOXGW bucket ' .. names[i] .. ' does not hold a TAT')
      end
      tat = unpack_tat('<d', stored)
      if tat ~= tat or tat < 0 then
        return redis.error_reply('INBOXGW bucket ' .. names[i] .. ' does not hold a TAT')
      end
    end
    tats[names[i]] = tat
  end
end

-- Decide each request in order.
local out, filled = {}, 0
local charged = {}
local intervals, bursts = {}, {}
arg = 2
for _ = 1, tonumber(ARGV[1]) do
  local n = tonumber(ARGV[arg])
  local cost = tonumber(ARGV[arg + 1])
  arg = arg + 2
  for b = 1, n do
    intervals[b] = tonumber(ARGV[arg])
    bursts[b] = tonumber(ARGV[arg + 1])
    arg = arg + 2
  end
  local count = tonumber(ARGV[arg])
  arg = arg + 1
  for _ = 1, count do
    local allowed = 1
    local limit, remaining = 0, -1
    local retry, retry_limit = 0, 0
    local reset_now, reset_after_charge = 0, 0
    for b = 1, n do
      local t = intervals[b]
      local burst = bursts[b]
      local tat = tats[ARGV[arg + b - 1]]
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
    filled = filled + 1
    if allowed == 0 then
      out[filled] = pack('<BI4I4i8i8', 0, retry_limit, 0, retry, reset_now)
    else
      for b = 1, n do
        local name = ARGV[arg + b - 1]
        local tat = tats[name]
        if tat < now then
          tat = now
        end
        tats[name] = tat + intervals[b] * cost
        charged[name] = true
      end
      out[filled] = pack('<BI4I4i8i8', 1, limit, remaining, 0, reset_after_charge)
    end
    arg = arg + n
  end
end

-- Write every charged bucket back, once.
local fields, count = {}, 0
for i = 1, named do
  local name = names[i]
  if charged[name] then
    fields[count + 1] = name
    fields[count + 2] = pack('<d', tats[name])
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
return table.concat(out)
