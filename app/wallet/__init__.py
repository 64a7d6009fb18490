"""The prepaid balance (预付充值): top-ups with bonus tiers, paying orders from the
balance, and refunds of them back to it. The balance is two journal accounts per learner
(app/ledger/accounts.py): paid money, and bonus that is spent after it and never goes
back in cash."""
