mod account;
mod codec;
mod decide;
mod fixtures;
mod json;
mod limits;
mod playback;
mod props;
