-- Deleting a namespace deletes everything of it (issue 21): its functions, keys, records,
-- async invocations and leases, in one transaction. A namespace made again with the same name
-- is a new incarnation with a new `uid`: records and async invocations are written only while
-- the incarnation they belong to exists (the writer names it, from the function it called, and
-- takes a key-share lock on its row), so that one of a deleted namespace written late never
-- lands in a new namespace of the same name.
ALTER TABLE namespaces ADD COLUMN uid UUID NOT NULL DEFAULT gen_random_uuid();
ALTER TABLE namespaces ADD CONSTRAINT namespaces_uid_key UNIQUE (uid);

-- What namespaces deleted before this migration left behind: no namespace may inherit it.
DELETE FROM invocations i
WHERE NOT EXISTS (SELECT 1 FROM namespaces n WHERE n.name = i.namespace);
DELETE FROM async_invocations a
WHERE NOT EXISTS (SELECT 1 FROM namespaces n WHERE n.name = a.namespace);
DELETE FROM leases l
WHERE l.scope LIKE 'namespace:%'
  AND NOT EXISTS (SELECT 1 FROM namespaces n WHERE 'namespace:' || n.name = l.scope);
