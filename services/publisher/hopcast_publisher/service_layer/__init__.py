"""The publisher's service layer: the handlers of its inbound events (`handlers.DISPATCH`) and
the publishing decisions (start, complete, give up), each loading, deciding and writing in
one transaction."""
