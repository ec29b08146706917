-- Stored state remembers the channel and product it was created under,
-- so every later operation can check that the caller's key is of the
-- same product (and record the channel that created it). Rows written
-- before this migration get them from the key that created them where
-- that is known; a row whose product cannot be recovered keeps '' and
-- answers 404 to every key (fail closed).
ALTER TABLE responses ADD COLUMN channel TEXT NOT NULL DEFAULT '';
ALTER TABLE responses ADD COLUMN product TEXT NOT NULL DEFAULT '';
ALTER TABLE conversations ADD COLUMN channel TEXT NOT NULL DEFAULT '';
ALTER TABLE conversations ADD COLUMN product TEXT NOT NULL DEFAULT '';
ALTER TABLE agents ADD COLUMN channel TEXT NOT NULL DEFAULT '';
ALTER TABLE agents ADD COLUMN product TEXT NOT NULL DEFAULT '';
ALTER TABLE runs ADD COLUMN channel TEXT NOT NULL DEFAULT '';
ALTER TABLE runs ADD COLUMN product TEXT NOT NULL DEFAULT '';

UPDATE responses SET
    channel = COALESCE((SELECT k.channel FROM virtual_keys k WHERE k.id = responses.key_id), ''),
    product = COALESCE((SELECT k.product FROM virtual_keys k WHERE k.id = responses.key_id), '');
UPDATE runs SET
    channel = COALESCE((SELECT k.channel FROM virtual_keys k WHERE k.id = json_extract(runs.body, '$.key_id')), ''),
    product = COALESCE((SELECT k.product FROM virtual_keys k WHERE k.id = json_extract(runs.body, '$.key_id')), '');
UPDATE agents SET product = COALESCE(json_extract(body, '$.product'), '');
UPDATE conversations SET
    channel = COALESCE(
        (SELECT r.channel FROM runs r WHERE r.conversation_id = conversations.id AND r.product <> '' ORDER BY r.created_at LIMIT 1),
        (SELECT r.channel FROM responses r WHERE r.conversation_id = conversations.id AND r.product <> '' ORDER BY r.created_at LIMIT 1),
        ''),
    product = COALESCE(
        (SELECT r.product FROM runs r WHERE r.conversation_id = conversations.id AND r.product <> '' ORDER BY r.created_at LIMIT 1),
        (SELECT r.product FROM responses r WHERE r.conversation_id = conversations.id AND r.product <> '' ORDER BY r.created_at LIMIT 1),
        '');

CREATE INDEX agents_tenant_product ON agents (tenant, product, id);
CREATE INDEX runs_tenant_product ON runs (tenant, product, id);
