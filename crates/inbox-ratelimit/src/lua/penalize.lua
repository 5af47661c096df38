-- inboxgw rate limiter: block a bucket until the platform's reset.
-- The reference is `penalized_tat` in crates/inbox-ratelimit/src/gcra.rs.
--
-- KEYS[1]   the bucket
-- ARGV      emission interval (µs), burst, block (µs)
-- Returns   the time (µs) until the bucket's next call may go: at least the block asked for.
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local t = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local block = tonumber(ARGV[3])
local floor = now + block + t * (burst - 1)
local tat = now
local stored = redis.call('GET', KEYS[1])
if stored then
  tat = tonumber(stored)
  if not tat then
    return redis.error_reply('INBOXGW bucket ' .. KEYS[1] .. ' does not hold a number')
  end
end
if floor > tat then
  tat = floor
  local ttl_ms = math.ceil((tat - now) / 1000)
  redis.call('SET', KEYS[1], tat, 'PX', ttl_ms)
end
return tat - t * (burst - 1) - now
