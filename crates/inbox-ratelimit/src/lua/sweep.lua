-- inboxgw rate limiter: delete full buckets, one HSCAN step at a time.
--
-- A bucket whose TAT has passed is full, which is what an absent bucket means too, so its
-- field can go: this keeps the hash as small as the set of buckets in use. Fields that do not
-- hold a TAT (8 bytes, see check.lua), which the check script refuses, are deleted as well,
-- which heals them.
--
-- KEYS[1]   the hash holding every bucket (see check.lua)
-- ARGV      the HSCAN cursor ("0" to start), the fields to look at in this step
-- Returns   {next cursor ("0" when the scan is complete), fields deleted}
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local scan = redis.call('HSCAN', KEYS[1], ARGV[1], 'COUNT', tonumber(ARGV[2]))
local pairs_ = scan[2]
local stale, count = {}, 0
for i = 1, #pairs_, 2 do
  local stored = pairs_[i + 1]
  local tat = nil
  if #stored == 8 then
    tat = struct.unpack('<d', stored)
  end
  if not tat or tat ~= tat or tat <= now then
    count = count + 1
    stale[count] = pairs_[i]
  end
end
if count > 0 then
  redis.call('HDEL', KEYS[1], unpack(stale, 1, count))
end
return {scan[1], count}
