def point_in_time_join(*a, **k):
    raise NotImplementedError
