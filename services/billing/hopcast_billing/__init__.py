"""Hopcast's billing: the credit ledger. Debits never overdraw and happen once per pending
post; refunds and grants happen once; the balance always equals the sum of the ledger."""
