-- Autocapture element chains (core/src/elements.rs): render a posthog-js `$elements` array,
-- parse a chain back (quotes, `;` and `:` inside values), PostHog's ElementGroup hash, the chain
-- store ingestion fills (one row per chain, shared by events and event types; malformed chains
-- kept as given), and elements/stats/ counts from SQL. Everything is rolled back.
\set VERBOSITY sqlstate
\set ON_ERROR_ROLLBACK on
SET timezone = 'UTC';
SET datestyle = 'ISO';
BEGIN;
SELECT project_id AS p FROM insights.create_project('elements test') \gset

SELECT insights.elements_chain_render('[
  {"tag_name":"a","$el_text":"Pay \"now\"","attr__href":"/pay;x","attr__class":"btn primary","nth_child":1,"nth_of_type":2},
  {"tag_name":"div","attr__class":"md:flex","nth_child":3,"nth_of_type":1}]') AS chain \gset
SELECT :'chain';
SELECT jsonb_pretty(insights.elements_chain_parse(:'chain'));
SELECT insights.elements_chain_hash(:'chain'), insights.elements_chain_hash('');
SELECT insights.elements_chain_render('[]'), insights.elements_chain_render('{"a":1}'),
       insights.elements_chain_render('["x", 5]');
-- Malformed chains never raise.
SELECT c, insights.elements_chain_parse(c)
  FROM unnest(ARRAY['"', ';;;', 'x:text="unterminated;;"a', 'a:nth-child="99999999999999"']) c;

SELECT insights.capture_batch(:p, format('[
  {"event":"$autocapture","distinct_id":"u1","timestamp":"2024-03-01T09:00:00Z","properties":{"$elements_chain":%s}},
  {"event":"$autocapture","distinct_id":"u2","timestamp":"2024-03-02T09:00:00Z","properties":{"$elements_chain":%s}},
  {"event":"$rageclick","distinct_id":"u2","timestamp":"2024-03-02T10:00:00Z","properties":{"$elements_chain":%s}},
  {"event":"$autocapture","distinct_id":"u3","timestamp":"2024-03-03T09:00:00Z","properties":{"$elements_chain":"button:nth-child=\"1\"nth-of-type=\"1\""}},
  {"event":"$autocapture","distinct_id":"u3","timestamp":"2024-03-03T10:00:00Z","properties":{"$elements_chain":"x:text=\"unterminated;;\"a"}},
  {"event":"$pageview","distinct_id":"u3","timestamp":"2024-03-03T11:00:00Z","properties":{}}
]', to_json(:'chain'::text), to_json(:'chain'::text), to_json(:'chain'::text))::jsonb);

SELECT hash, chain FROM insights.element_chains WHERE project_id = :p ORDER BY chain;
SELECT c.chain, e."order", e.tag_name, e.text, e.href, e.attr_class, e.nth_child, e.nth_of_type, e.attributes
  FROM insights.elements e JOIN insights.element_chains c ON c.project_id = e.project_id AND c.hash = e.chain_hash
 WHERE e.project_id = :p ORDER BY c.chain, e."order";

SELECT x->>'type' AS type, x->>'count' AS count, x->>'hash' AS hash, x->'elements'->0->>'tag_name' AS tag
  FROM jsonb_array_elements(insights._elements_stats(:p, ARRAY['$autocapture', '$rageclick'], '[]', false,
                            '2024-03-01', '2024-03-04', 100, 0)) x;
SELECT x->>'type' AS type, x->>'count' AS count
  FROM jsonb_array_elements(insights._elements_stats(:p, ARRAY['$autocapture'],
                            '[{"key":"tag_name","value":"div","type":"element"}]', false,
                            '2024-03-01', '2024-03-04', 100, 0)) x;
-- Paging asks for limit + 1 rows.
SELECT jsonb_array_length(insights._elements_stats(:p, ARRAY['$autocapture'], '[]', false,
                          '2024-03-01', '2024-03-04', 1, 1));
-- Bad include or properties: 22023.
SELECT insights._elements_stats(:p, ARRAY['$pageview'], '[]', false, '2024-03-01', '2024-03-04', 100, 0);
SELECT insights._elements_stats(:p, ARRAY['$autocapture'], '[{"key":"attr_id","value":"x","type":"element"}]',
                                false, '2024-03-01', '2024-03-04', 100, 0);
SELECT insights.query_param_all('include=%24autocapture&limit=2&include=%24rageclick', 'include');
ROLLBACK;
