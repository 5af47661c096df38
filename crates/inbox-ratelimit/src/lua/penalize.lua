-- inboxgw rate limiter: block a bucket until the platform's reset.
-- The reference is `penalized_tat` in crates/inbox-ratelimit/src/gcra.rs.
--
-- KEYS[1]   the hash holding every bucket (see check.lua: TATs are 8-byte doubles)
-- ARGV      the bucket's name, emission interval (µs), burst, block (µs)
-- Returns   the time (µs) until the bucket's next call may go: at least the block asked for.
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local name = ARGV[1]
local t = tonumber(ARGV[2])
local burst = tonumber(ARGV[3])
local block = tonumber(ARGV[4])
local floor = now + block + t * (burst - 1)
local tat = now
local stored = redis.call('HGET', KEYS[1], name)
if stored then
  if #stored == 8 then
    tat = struct.unpack('<d', stored)
  end
  if #stored ~= 8 or tat ~= tat or tat < 0 then
    return redis.error_reply('INBOXGW bucket ' .. name .. ' does not hold a TAT')
  end
end
if floor > tat then
  tat = floor
  redis.call('HSET', KEYS[1], name, struct.pack('<d', tat))
end
return tat - t * (burst - 1) - now
