-- Input items may name an item stored earlier (`item_reference`): it is
-- looked up by id among the tenant's stored responses and conversations.
CREATE INDEX response_items_item ON response_items (item_id);
CREATE INDEX conversation_items_item ON conversation_items (item_id);
