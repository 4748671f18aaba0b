package ratelimit

import (
	"context"
	"fmt"
	"strconv"

	"github.com/redis/go-redis/v9"
)

// gcraScript decides one request against both limits atomically, with the
// arithmetic of gcra.go.
//
// KEYS[1]: a hash, field "m" the minute limit's TAT and "h" the hour
// limit's, in µs since the Unix epoch; it expires when both are past.
// ARGV: now in µs ("" = the server's TIME, which is what production uses),
// then the minute interval (µs) and burst, then the hour interval and burst.
// Returns {m_ok, m_remaining, m_retry, m_reset, h_ok, h_remaining, h_retry,
// h_reset}, ok as 1 or 0, times in µs. The TATs are written only when both
// limits admit the request.
//
// Lua numbers are doubles: every value here is an integer below 2^53, so the
// arithmetic is exact; math.floor of a quotient is exact too, as a quotient
// of such integers is never within one ulp below a whole number it is not.
const gcraScript = `
if redis.replicate_commands then pcall(redis.replicate_commands) end
local now = tonumber(ARGV[1])
if not now then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local function check(tat, interval, burst)
  tat = tonumber(tat) or now
  if tat < now then tat = now end
  local nxt = tat + interval
  local cap = interval * burst
  local over = nxt - now - cap
  if over > 0 then
    return 0, 0, over, tat - now, nxt
  end
  return 1, math.floor((cap - (nxt - now)) / interval), 0, nxt - now, nxt
end
local st = redis.call('HMGET', KEYS[1], 'm', 'h')
local mok, mrem, mretry, mreset, mtat = check(st[1], tonumber(ARGV[2]), tonumber(ARGV[3]))
local hok, hrem, hretry, hreset, htat = check(st[2], tonumber(ARGV[4]), tonumber(ARGV[5]))
if mok == 1 and hok == 1 then
  redis.call('HSET', KEYS[1], 'm', string.format('%.0f', mtat), 'h', string.format('%.0f', htat))
  local ttl = math.max(mtat, htat) - now
  redis.call('PEXPIRE', KEYS[1], math.floor(ttl / 1000) + 1)
end
return {mok, mrem, mretry, mreset, hok, hrem, hretry, hreset}
`

// scriptResultLen is the number of integers gcraScript returns.
const scriptResultLen = 8

// runScript evaluates gcraScript for key (EVALSHA, falling back to EVAL when
// the server does not have it cached, e.g. after a restart). now is µs since
// the Unix epoch, or 0 to use Redis TIME.
func runScript(ctx context.Context, rdb redis.Scripter, script *redis.Script, key string, lim limits, now int64) (m, h verdict, err error) {
	nowArg := ""
	if now != 0 {
		nowArg = strconv.FormatInt(now, 10)
	}
	vals, err := script.Run(ctx, rdb, []string{key}, nowArg,
		lim.minute.interval, lim.minute.burst, lim.hour.interval, lim.hour.burst).Int64Slice()
	if err != nil {
		return m, h, fmt.Errorf("rate limit script: %w", err)
	}
	if len(vals) != scriptResultLen {
		return m, h, fmt.Errorf("rate limit script: %d results, want %d", len(vals), scriptResultLen)
	}
	m = verdict{ok: vals[0] == 1, remaining: vals[1], retry: vals[2], reset: vals[3]}
	h = verdict{ok: vals[4] == 1, remaining: vals[5], retry: vals[6], reset: vals[7]}
	return m, h, nil
}
