"""Dashboard widgets: each shows part of a :class:`DashboardSnapshot` set on its ``snapshot`` attribute."""
