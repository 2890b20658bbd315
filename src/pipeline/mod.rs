//! Generation: prompt + tracks (+ image) -> frames, orchestrating the models phase by phase, on a
//! background worker that reports progress over channels.
