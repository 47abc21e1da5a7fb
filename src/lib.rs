//! kfauth
