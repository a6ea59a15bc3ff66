mod codec;
mod decide;
mod fixtures;
mod json;
mod playback;
mod props;
mod limits;
