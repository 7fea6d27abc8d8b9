"""Content's service layer: a plain async function per event, `handler(deps, ctx, data)`, that
loads, decides (with the domain) and writes in the consumer's transaction; the events it emits
go to the outbox in the same transaction. `dispatch.DISPATCH` maps each event type to its
handler."""
