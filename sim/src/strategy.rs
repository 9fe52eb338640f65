//! proptest strategies (todo)
