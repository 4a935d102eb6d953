"""The MovieLens public benchmark of the recommender: reading the rating files and the
benchmark under the Microsoft Recommenders protocol. Kept apart from the production
`recs` package, which it imports."""
