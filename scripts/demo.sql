-- Demo data: a product-like event stream for project :project_id, ingested through
-- insights.capture_batch (the same path as the SDKs), deterministic (setseed).
-- ~3,000 persons arriving over the last 28 days, sessions of pageviews and a shop funnel
-- (view_item → add_to_cart → checkout → purchase), signups with $identify and $set, browsers,
-- countries and plans.
SELECT setseed(0.42);
DO $$
DECLARE
    v_project bigint := current_setting('pgi.demo_project')::bigint;
    v_batch jsonb := '[]';
    v_n integer := 0;
    p integer;
    s integer;
    v_anon text;
    v_user text;
    v_ts timestamptz;
    v_browser text;
    v_country text;
    v_props jsonb;
    v_depth integer;
    v_signed boolean;
    v_start timestamptz := date_trunc('day', now()) - interval '28 days';
    browsers text[] := ARRAY['Chrome','Chrome','Chrome','Safari','Safari','Firefox','Edge'];
    countries text[] := ARRAY['US','US','US','DE','GB','FR','IN','BR','JP','CA'];
    urls text[] := ARRAY['/','/pricing','/docs','/blog','/products','/about'];
BEGIN
    FOR p IN 1..3000 LOOP
        v_anon := 'anon-' || p;
        v_user := 'user-' || p || '@example.com';
        v_browser := browsers[1 + floor(random() * 7)::int];
        v_country := countries[1 + floor(random() * 10)::int];
        v_signed := false;
        v_ts := v_start + random() * interval '27 days';
        -- Sessions: most people come back a few times, a few are heavy users.
        FOR s IN 1..(1 + floor(-ln(1 - random() * 0.999) * 3)::int) LOOP
            EXIT WHEN v_ts > now();
            v_props := jsonb_build_object('$browser', v_browser, '$geoip_country_code', v_country,
                                          '$session_id', 's-' || p || '-' || s);
            v_batch := v_batch || jsonb_build_object('event', '$pageview',
                'distinct_id', CASE WHEN v_signed THEN v_user ELSE v_anon END, 'timestamp', v_ts,
                'properties', v_props || jsonb_build_object('$current_url',
                    'https://shop.example.com' || urls[1 + floor(random() * 6)::int]));
            v_depth := CASE WHEN random() < 0.55 THEN 1 + floor(random() * 4)::int ELSE 0 END;
            IF v_depth >= 1 THEN
                v_ts := v_ts + random() * interval '3 minutes';
                v_batch := v_batch || jsonb_build_object('event', 'view_item', 'timestamp', v_ts,
                    'distinct_id', CASE WHEN v_signed THEN v_user ELSE v_anon END,
                    'properties', v_props || jsonb_build_object('item', 'sku-' || floor(random() * 40)::int,
                                                                'price', 5 + floor(random() * 95)::int));
            END IF;
            IF NOT v_signed AND random() < 0.35 THEN
                v_ts := v_ts + random() * interval '5 minutes';
                v_signed := true;
                v_batch := v_batch || jsonb_build_object('event', '$identify', 'distinct_id', v_user,
                    'timestamp', v_ts, 'properties', v_props || jsonb_build_object(
                        '$anon_distinct_id', v_anon,
                        '$set', jsonb_build_object('email', v_user, 'plan',
                            (ARRAY['free','free','free','pro','enterprise'])[1 + floor(random() * 5)::int])));
                v_batch := v_batch || jsonb_build_object('event', 'signed_up', 'distinct_id', v_user,
                    'timestamp', v_ts + interval '1 second', 'properties', v_props);
            END IF;
            IF v_depth >= 2 THEN
                v_ts := v_ts + random() * interval '10 minutes';
                v_batch := v_batch || jsonb_build_object('event', 'add_to_cart', 'timestamp', v_ts,
                    'distinct_id', CASE WHEN v_signed THEN v_user ELSE v_anon END, 'properties', v_props);
            END IF;
            IF v_depth >= 3 THEN
                v_ts := v_ts + random() * interval '1 hour';
                v_batch := v_batch || jsonb_build_object('event', 'checkout', 'timestamp', v_ts,
                    'distinct_id', CASE WHEN v_signed THEN v_user ELSE v_anon END, 'properties', v_props);
            END IF;
            IF v_depth >= 4 AND random() < 0.8 THEN
                v_ts := v_ts + random() * interval '2 hours';
                v_batch := v_batch || jsonb_build_object('event', 'purchase', 'timestamp', v_ts,
                    'distinct_id', CASE WHEN v_signed THEN v_user ELSE v_anon END,
                    'properties', v_props || jsonb_build_object('revenue', 10 + floor(random() * 190)::int));
            END IF;
            v_ts := v_ts + (0.2 + -ln(1 - random() * 0.999) * 3) * interval '1 day';
        END LOOP;
        IF jsonb_array_length(v_batch) >= 1000 THEN
            v_n := v_n + insights.capture_batch(v_project, v_batch);
            v_batch := '[]';
        END IF;
    END LOOP;
    v_n := v_n + insights.capture_batch(v_project, v_batch);
    RAISE NOTICE 'demo: % events stored', v_n;
END $$;
