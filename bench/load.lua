-- wrk script of bench/load: a mix of PostHog ingestion (/batch/) and insight queries against one
-- project. Run by bench/load, which passes everything through the environment:
--   PGI_LOAD_PROJECT, PGI_LOAD_TOKEN (project token, /batch/), PGI_LOAD_KEY (personal API key),
--   PGI_LOAD_MIX (comma list of request kinds, cycled per connection), PGI_LOAD_BATCH (events per
--   batch), PGI_LOAD_OUT (JSON summary written by done()).
--
-- Per-kind latency: wrk times requests but cannot tell kinds apart, so each thread times its own
-- with CLOCK_MONOTONIC (LuaJIT FFI) from request() to response(). That pairing is exact only with
-- ONE connection per thread (bench/load runs wrk with -t equal to -c): wrk then alternates
-- request() and response() on that connection.
local ffi = require("ffi")
ffi.cdef [[
typedef struct { long tv_sec; long tv_nsec; } pgi_timespec;
int clock_gettime(int clk_id, pgi_timespec *tp);
]]
local ts = ffi.new("pgi_timespec")
local function now_ms()
  ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC
  return tonumber(ts.tv_sec) * 1000 + tonumber(ts.tv_nsec) / 1e6
end

local project = os.getenv("PGI_LOAD_PROJECT")
local token = os.getenv("PGI_LOAD_TOKEN")
local key = os.getenv("PGI_LOAD_KEY")
local batch_size = tonumber(os.getenv("PGI_LOAD_BATCH") or "50")
local mix = {}
local kinds_used, seen = {}, {} -- the distinct kinds of the mix
for kind in string.gmatch(os.getenv("PGI_LOAD_MIX") or "batch", "[^,]+") do
  mix[#mix + 1] = kind
  if not seen[kind] then kinds_used[#kinds_used + 1], seen[kind] = kind, true end
end

local auth = { ["Authorization"] = "Bearer " .. (key or ""), ["Content-Type"] = "application/json" }
local api = "/api/projects/" .. (project or "0")

-- The query requests: fixed bodies over the last 30 days (so events ingested during the run count).
local function urlencode(s)
  return (string.gsub(s, "[^%w%-_%.~]", function(c) return string.format("%%%02X", string.byte(c)) end))
end
local trend_path = api .. "/insights/trend/?insight=TRENDS&date_from=-30d&interval=day&breakdown=%24browser" ..
    "&events=" .. urlencode('[{"id":"$pageview","type":"events","math":"dau"}]')
local funnel_body = '{"insight":"FUNNELS","date_from":"-30d","funnel_window_interval":14,' ..
    '"funnel_window_interval_unit":"day","events":[{"id":"$pageview","order":0},{"id":"view_item","order":1},' ..
    '{"id":"add_to_cart","order":2},{"id":"purchase","order":3}]}'
-- /query/ with force_blocking inside the minimum refresh gap is served from the cache (docs/api.md),
-- so each query carries a filter no event matches (a random $browser to exclude): a new cache key,
-- hence a real computation every time.
local function query_trend_body()
  return '{"refresh":"force_blocking","query":{"kind":"TrendsQuery","interval":"day",' ..
      '"dateRange":{"date_from":"-30d"},"series":[{"kind":"EventsNode","event":"$pageview","math":"total"},' ..
      '{"kind":"EventsNode","event":"purchase","math":"dau"}],"properties":[{"key":"$browser","type":"event",' ..
      '"operator":"is_not","value":"nonce-' .. math.random(1, 1e9) .. '"}]}}'
end
local function query_funnel_body()
  return '{"refresh":"force_blocking","query":{"kind":"FunnelsQuery","dateRange":{"date_from":"-30d"},' ..
      '"series":[{"kind":"EventsNode","event":"$pageview"},{"kind":"EventsNode","event":"add_to_cart"},' ..
      '{"kind":"EventsNode","event":"purchase"}],"funnelsFilter":{"funnelWindowInterval":7,' ..
      '"funnelWindowIntervalUnit":"day"},"breakdownFilter":{"breakdown":"$browser","breakdown_type":"event"},' ..
      '"properties":[{"key":"$browser","type":"event","operator":"is_not","value":"nonce-' ..
      math.random(1, 1e9) .. '"}]}}'
end

-- Main state: remember the threads so done() can collect their counters.
local threads = {}
local next_id = 1
function setup(thread)
  thread:set("thread_id", next_id)
  next_id = next_id + 1
  threads[#threads + 1] = thread
end

-- Thread state. Globals, because done() reads them with thread:get(), which copies only flat
-- tables (a nested one crashes wrk 4.1):
--   cnt[3*(i-1) + 1|2|3]: sent, 2xx, non-2xx of kinds_used[i]; lat_<kind>: latencies (ms) of its
--   2xx answers; acked / rejected: batch ids answered 2xx / non-2xx; lost: batch ids whose
--   connection failed before an answer; last_batch: the batch in flight (at most one per
--   connection); bad_samples: the first non-2xx answers, for diagnosis.
-- Batch ids are numbers (thread_id * 1e6 + sequence): copying many strings out of the threads gave
-- an occasional garbled string here, numbers copy by value.
cnt, acked, rejected, lost, last_batch, bad_samples = {}, {}, {}, {}, nil, {}
local n, seq, kind, kind_no, started, probed = 0, 0, nil, 0, 0, false
local kind_index = {}
for i, k in ipairs(kinds_used) do kind_index[k] = i end

function init(args)
  math.randomseed(os.time() * 1000 + thread_id * 7919 + math.floor(now_ms() % 1000))
  for i, k in ipairs(kinds_used) do
    cnt[3 * i - 2], cnt[3 * i - 1], cnt[3 * i] = 0, 0, 0
    _G["lat_" .. k] = {}
  end
end

local hex = "0123456789abcdef"
local function rand_hex(len)
  local t = {}
  for i = 1, len do
    local r = math.random(1, 16)
    t[i] = string.sub(hex, r, r)
  end
  return table.concat(t)
end
local function uuid4()
  local r = math.random(1, 4)
  local v = string.sub("89ab", r, r)
  return rand_hex(8) .. "-" .. rand_hex(4) .. "-4" .. rand_hex(3) .. "-" .. v .. rand_hex(3) .. "-" .. rand_hex(12)
end

local events = { "$pageview", "$pageview", "$pageview", "view_item", "view_item", "add_to_cart", "purchase" }
local browsers = { "Chrome", "Chrome", "Safari", "Firefox", "Edge" }
local function batch_body(id)
  local now = os.date("!%Y-%m-%dT%H:%M:%SZ")
  local parts = {}
  for i = 1, batch_size do
    parts[i] = string.format(
      '{"event":"%s","distinct_id":"user-%d","uuid":"%s","timestamp":"%s","properties":' ..
      '{"$browser":"%s","$current_url":"https://shop.example.com/p/%d","load_batch":%d}}',
      events[math.random(#events)], math.random(0, 24999), uuid4(), now,
      browsers[math.random(#browsers)], math.random(0, 199), id)
  end
  return '{"api_key":"' .. token .. '","batch":[' .. table.concat(parts, ",") .. "]}"
end

function request()
  -- wrk calls request() once in the first thread before the run to check the script (the
  -- request is never sent): answer it without counting anything.
  if thread_id == 1 and not probed then
    probed = true
    return wrk.format("GET", "/")
  end
  if last_batch then -- the previous batch got no answer (socket error, reconnect)
    lost[#lost + 1] = last_batch
    last_batch = nil
  end
  n = n + 1
  kind = mix[(n - 1) % #mix + 1]
  kind_no = kind_index[kind]
  cnt[3 * kind_no - 2] = cnt[3 * kind_no - 2] + 1
  local req
  if kind == "batch" then
    seq = seq + 1
    last_batch = thread_id * 1000000 + seq
    req = wrk.format("POST", "/batch/", { ["Content-Type"] = "application/json" }, batch_body(last_batch))
  elseif kind == "trend" then
    req = wrk.format("GET", trend_path, auth)
  elseif kind == "funnel" then
    req = wrk.format("POST", api .. "/insights/funnel/", auth, funnel_body)
  elseif kind == "query_trend" then
    req = wrk.format("POST", api .. "/query/", auth, query_trend_body())
  elseif kind == "query_funnel" then
    req = wrk.format("POST", api .. "/query/", auth, query_funnel_body())
  elseif kind == "persons" then
    req = wrk.format("GET", api .. "/persons/?limit=100", auth)
  else
    error("unknown request kind " .. kind)
  end
  started = now_ms()
  return req
end

function response(status, headers, body)
  if status >= 200 and status < 300 then
    cnt[3 * kind_no - 1] = cnt[3 * kind_no - 1] + 1
    local lat = _G["lat_" .. kind]
    lat[#lat + 1] = now_ms() - started
    if kind == "batch" then
      acked[#acked + 1] = last_batch
      last_batch = nil
    end
  else
    cnt[3 * kind_no] = cnt[3 * kind_no] + 1
    if kind == "batch" then
      rejected[#rejected + 1] = last_batch
      last_batch = nil
    end
    if #bad_samples < 5 then bad_samples[#bad_samples + 1] = kind .. " " .. status .. " " .. string.sub(body or "", 1, 300) end
  end
end

-- Main state again: merge the threads' counters, print percentiles per kind, write the JSON summary.
local function pct(sorted, p)
  if #sorted == 0 then return 0 end
  -- wrk's rank (stats_percentile). wrk's own Latency Distribution differs for a mix: before printing
  -- it adds synthetic samples for answers slower than twice the mean interval per connection (its
  -- coordinated-omission correction, stats_correct); these rows are the measured answers only.
  return sorted[math.max(1, math.min(#sorted, math.floor(p / 100 * #sorted + 1)))]
end
local function jstr(s) -- ASCII-only JSON string (anything else escaped)
  local e = string.gsub(s, '[^ !#-%[%]-~]', function(c) return string.format("\\u%04x", string.byte(c)) end)
  return '"' .. e .. '"'
end

function done(summary, latency, requests)
  local kinds, merged, all = {}, {}, {}
  local acks, inflight, samples, rej, lst = {}, {}, {}, {}, {}
  for _, t in ipairs(threads) do
    local c = t:get("cnt")
    for i, k in ipairs(kinds_used) do
      if not merged[k] then
        merged[k] = { sent = 0, ok = 0, bad = 0, lat = {} }
        kinds[#kinds + 1] = k
      end
      local m = merged[k]
      m.sent, m.ok, m.bad = m.sent + c[3 * i - 2], m.ok + c[3 * i - 1], m.bad + c[3 * i]
      for _, v in ipairs(t:get("lat_" .. k)) do
        m.lat[#m.lat + 1] = v
        all[#all + 1] = v
      end
    end
    for _, b in ipairs(t:get("acked")) do acks[#acks + 1] = b end
    local lb = t:get("last_batch")
    if lb then inflight[#inflight + 1] = lb end
    for _, b in ipairs(t:get("bad_samples")) do samples[#samples + 1] = b end
    for _, b in ipairs(t:get("rejected")) do rej[#rej + 1] = b end
    for _, b in ipairs(t:get("lost")) do lst[#lst + 1] = b end
  end
  table.sort(kinds)
  kinds[#kinds + 1] = "all"
  merged["all"] = { lat = all, ok = #all, sent = 0, bad = 0 }
  for _, k in ipairs(kinds) do
    if k ~= "all" then
      merged.all.sent, merged.all.bad = merged.all.sent + merged[k].sent, merged.all.bad + merged[k].bad
    end
  end
  local secs = summary.duration / 1e6
  io.write(string.format("\n%-13s %8s %8s %6s %8s %9s %9s %9s %9s\n", "kind", "sent", "2xx", "non2xx",
    "req/s", "p50 ms", "p90 ms", "p99 ms", "max ms"))
  local rows = {}
  for _, k in ipairs(kinds) do
    local m = merged[k]
    table.sort(m.lat)
    local r = { kind = k, sent = m.sent, ok = m.ok, bad = m.bad, rps = m.ok / secs, p50 = pct(m.lat, 50),
      p90 = pct(m.lat, 90), p99 = pct(m.lat, 99), max = m.lat[#m.lat] or 0 }
    rows[#rows + 1] = r
    io.write(string.format("%-13s %8d %8d %6d %8.1f %9.1f %9.1f %9.1f %9.1f\n", k, r.sent, r.ok, r.bad, r.rps,
      r.p50, r.p90, r.p99, r.max))
  end
  for i = 1, math.min(5, #samples) do io.write("non-2xx sample: " .. samples[i] .. "\n") end
  local out = os.getenv("PGI_LOAD_OUT")
  if out then
    local f = assert(io.open(out, "w"))
    local e = summary.errors
    f:write(string.format('{"duration_s":%.3f,"requests":%d,"bytes":%d,"errors":{"connect":%d,"read":%d,' ..
      '"write":%d,"status":%d,"timeout":%d},"batch_size":%d,"kinds":[', secs, summary.requests, summary.bytes,
      e.connect, e.read, e.write, e.status, e.timeout, batch_size))
    for i, r in ipairs(rows) do
      f:write(string.format('%s{"kind":%s,"sent":%d,"ok":%d,"non2xx":%d,"rps":%.2f,"p50_ms":%.1f,"p90_ms":%.1f,' ..
        '"p99_ms":%.1f,"max_ms":%.1f}', i > 1 and "," or "", jstr(r.kind), r.sent, r.ok, r.bad, r.rps, r.p50,
        r.p90, r.p99, r.max))
    end
    local function list(xs)
      local q = {}
      for i, x in ipairs(xs) do q[i] = type(x) == "number" and string.format("%d", x) or jstr(x) end
      return "[" .. table.concat(q, ",") .. "]"
    end
    f:write('],"acked_batches":' .. list(acks) .. ',"inflight_batches":' .. list(inflight) ..
      ',"rejected_batches":' .. list(rej) ..
      ',"lost_batches":' .. list(lst) .. ',"non2xx_samples":' .. list(samples) .. "}\n")
    f:close()
  end
end
